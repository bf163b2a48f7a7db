public import Logging
import CIOMMUFD
public import IOMMUFD
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A legacy VFIO container (`/dev/vfio/vfio`) driven by the type1v2 IOMMU backend: the
/// path for kernels without iommufd, such as Debian's stock kernels.
///
/// The order the kernel insists on is kept by construction: a container is opened and
/// checked (API version, type1v2), groups join it (``VFIOGroup``), the first group
/// switches the IOMMU on (`VFIO_SET_IOMMU`), and only then can memory be mapped.
// @safe: its raw storage (the locked membership) is used only behind this interface; the
// one call that can break memory safety, `map(userAddress:)`, is itself @unsafe.
@safe
public final class VFIOContainer: Sendable {
    /// The container's file descriptor.
    public var fileDescriptor: FileDescriptor { FileDescriptor(rawValue: fd) }
    /// The raw descriptor, for the catalogue's calls.
    let fd: Int32
    let system: any SystemInterface
    /// The system as the ioctl catalogue calls it.
    package let seam: IOCTLSeam
    /// Where the container and its groups log teardown failures.
    let logger: Logger
    /// Whether the type1v2 IOMMU was switched on (by the first group that joined).
    public var isIOMMUSet: Bool { unsafe membership.withLock { $0.isIOMMUSet } }
    /// The groups in the container, in the order they joined.
    public var groupNumbers: [Int] { unsafe membership.withLock { $0.groupNumbers } }
    /// Whether the IOMMU is set and which groups joined, behind a lock: groups join and
    /// leave from any thread.
    private let membership = unsafe LockedState((isIOMMUSet: false, groupNumbers: [Int]()))

    /// The container node.
    public static let path = "/dev/vfio/vfio"

    /// Opens `/dev/vfio/vfio` with `O_CLOEXEC` and checks that it speaks VFIO API 0 and
    /// offers the type1v2 IOMMU.
    ///
    /// - Throws: `ENOENT` from `open` without the vfio module, `EINVAL` (reported against
    ///   `VFIO_GET_API_VERSION`) for another API version, `ENODEV` (against
    ///   `VFIO_CHECK_EXTENSION`) when type1v2 is missing.
    public init(system: any SystemInterface = LinuxSystem(), logger: Logger = IOMMUFD.silentLogger) throws(IOMMUError) {
        self.logger = logger
        do {
            fd = try system.open(Self.path, flags: O_RDWR | O_CLOEXEC, mode: 0)
        } catch {
            throw IOMMUError(.open, error, IOMMUErrorContext(path: Self.path))
        }
        self.system = system
        seam = IOCTLSeam(system)
        do throws(IOMMUError) {
            let version = try VFIOContainerIOCTL.getAPIVersion(seam, fd, fileID: #fileID, line: #line)
            guard version == Int32(VFIO_API_VERSION) else {
                throw IOMMUError(.vfioGetAPIVersion, .invalidArgument, IOMMUErrorContext(objectID: UInt32(bitPattern: version), path: Self.path))
            }
            guard try supports(VFIO_TYPE1v2_IOMMU) else {
                throw IOMMUError(.vfioCheckExtension, .operationNotSupportedByDevice, IOMMUErrorContext(objectID: UInt32(VFIO_TYPE1v2_IOMMU), path: Self.path))
            }
        } catch {
            try? system.close(fd)
            throw error
        }
    }

    deinit {
        do { try system.close(fd) } catch {
            logger.debug("closing the VFIO container failed", metadata: ["error": "\(error)"])
        }
    }

    /// `VFIO_CHECK_EXTENSION`: whether the container offers an IOMMU type or extension
    /// (`VFIO_TYPE1v2_IOMMU`, `VFIO_UNMAP_ALL`, `VFIO_UPDATE_VADDR`...).
    public func supports(_ extensionID: UInt) throws(IOMMUError) -> Bool {
        try VFIOContainerIOCTL.checkExtension(seam, fd, extensionID, fileID: #fileID, line: #line) > 0
    }

    /// Records a group that joined; the first one switches the type1v2 IOMMU on.
    func adopt(groupNumber: Int) throws(IOMMUError) {
        unsafe try membership.withLock { (state) throws(IOMMUError) in
            if !state.isIOMMUSet {
                try VFIOContainerIOCTL.setIOMMU(seam, fd, VFIO_TYPE1v2_IOMMU, fileID: #fileID, line: #line)
                state.isIOMMUSet = true
            }
            state.groupNumbers.append(groupNumber)
        }
    }

    /// Forgets a group whose descriptor was closed (the kernel took it out of the container).
    func release(groupNumber: Int) {
        unsafe membership.withLock { $0.groupNumbers.removeAll { $0 == groupNumber } }
    }

    // MARK: DMA

    /// Maps user memory for the devices of this container's groups (`VFIO_IOMMU_MAP_DMA`).
    /// Type1 has no kernel-chosen IOVAs: the caller always names the IOVA.
    ///
    /// - Throws: `EINVAL` before any group joined, for a zero or unaligned length/IOVA/address,
    ///   or an IOVA outside the valid ranges; `EEXIST` when it overlaps a mapping; `ENOSPC`
    ///   when `dma_entry_limit` is used up; `ENOMEM` at the memlock limit; `EFAULT` for
    ///   memory that is not mapped.
    /// - Safety: `[userAddress, userAddress + length)` must stay mapped in this process, and
    ///   must not be handed to any other use that assumes it is private, until the mapping is
    ///   removed and every device of the container's groups that could reach it is quiesced:
    ///   a device may read or write it at any moment in between, and type1 keeps its pages
    ///   pinned even after a `munmap`.
    @unsafe
    public func map(
        userAddress: UInt64, length: UInt64, at iova: IOVA, access: MapAccess = .readWrite,
        fileID: StaticString = #fileID, line: Int = #line
    ) throws(IOMMUError) -> DMAMapping {
        let flags = (access.contains(.readable) ? VFIO_DMA_MAP_FLAG_READ : 0) | (access.contains(.writeable) ? VFIO_DMA_MAP_FLAG_WRITE : 0)
        do {
            try VFIOContainerIOCTL.mapDMA(seam, fd, flags: flags, userAddress: userAddress, iova: iova.rawValue, size: length,
                                          fileID: fileID, line: line)
        } catch {
            var error = error
            if error.errno == .noMemory, let limit = try? system.memoryLockLimit() { error.context.memlockLimit = limit.current }
            throw error.advised()
        }
        return DMAMapping(iova: iova, length: length)
    }

    /// Removes exactly one earlier mapping (`VFIO_IOMMU_UNMAP_DMA`). Type1v2 refuses to cut
    /// a mapping (`EINVAL`); a range with no mapping unmaps 0 bytes, which is reported
    /// as `ENOENT` here so that a stale handle is not silently accepted.
    public func unmap(_ mapping: DMAMapping, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        let unmapped = try unmap(iova: mapping.iova, length: mapping.length, fileID: fileID, line: line)
        guard unmapped == mapping.length else {
            var context = IOMMUErrorContext(iova: mapping.iova.rawValue, length: mapping.length, fileDescriptor: fd)
            context.reportedLength = unmapped
            throw IOMMUError(.vfioIOMMUUnmapDMA, unmapped == 0 ? .noSuchFileOrDirectory : .ioError, context, fileID: fileID, line: line)
        }
    }

    /// Unmaps every mapping inside `[iova, iova + length)` and returns the bytes unmapped.
    @discardableResult
    public func unmap(iova: IOVA, length: UInt64, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> UInt64 {
        try advising { () throws(IOMMUError) in
            try VFIOContainerIOCTL.unmapDMA(seam, fd, flags: 0, iova: iova.rawValue, size: length, fileID: fileID, line: line)
        }
    }

    /// Unmaps everything (`VFIO_DMA_UNMAP_FLAG_ALL`, needs the `VFIO_UNMAP_ALL` extension).
    @discardableResult
    public func unmapAll(fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> UInt64 {
        try VFIOContainerIOCTL.unmapDMA(seam, fd, flags: VFIO_DMA_UNMAP_FLAG_ALL, iova: 0, size: 0, fileID: fileID, line: line)
    }

    /// `VFIO_IOMMU_GET_INFO` with its capability chain: page sizes, the valid IOVA
    /// ranges and how many more mappings `dma_entry_limit` allows.
    public func info(fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> Type1Info {
        // Asked with room for the fixed part; with a capability chain, again with the size the kernel wants.
        unsafe try withSizeNegotiation(initialByteCount: MemoryLayout<vfio_iommu_type1_info>.size, operation: .vfioIOMMUGetInfo,
                                fileID: fileID, line: line) { (buffer) throws(IOMMUError) -> SizedAnswer<Type1Info> in
            let header = unsafe try VFIOContainerIOCTL.getInfo(seam, fd, into: buffer, fileID: fileID, line: line)
            var info = Type1Info(pageSizes: header.iova_pgsizes, iovaRanges: [], availableMappings: nil)
            guard header.flags & VFIO_IOMMU_INFO_CAPS != 0 else { return .complete(info) }
            guard Int(header.argsz) <= buffer.count else { return .needs(byteCount: Int(header.argsz)) }
            guard header.cap_offset != 0 else { return .complete(info) }
            for unsafe capability in unsafe CapabilityChain(UnsafeRawBufferPointer(buffer), first: header.cap_offset) {
                switch unsafe capability.id {
                case VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE:
                    let count = unsafe Int(capability.body.load(fromByteOffset: 0, as: UInt32.self))
                    let rangesStart = MemoryLayout<vfio_iommu_type1_info_cap_iova_range>.size - MemoryLayout<vfio_info_cap_header>.size
                    for index in 0..<count {
                        let offset = rangesStart + index * MemoryLayout<vfio_iova_range>.size
                        guard unsafe offset + MemoryLayout<vfio_iova_range>.size <= capability.body.count else { break }
                        let range = unsafe capability.body.loadUnaligned(fromByteOffset: offset, as: vfio_iova_range.self)
                        info.iovaRanges.append(IOVARange(start: IOVA(range.start), last: IOVA(range.end)))
                    }
                case VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL:
                    info.availableMappings = unsafe capability.body.load(fromByteOffset: 0, as: UInt32.self)
                default:
                    break
                }
            }
            return .complete(info)
        }
    }
}

/// What `VFIO_IOMMU_GET_INFO` reports for a type1 container.
public struct Type1Info: Sendable, Hashable {
    /// The IOMMU page sizes as a bitmap (bit n set: 2^n bytes).
    public var pageSizes: UInt64
    /// The IOVA ranges a mapping may use (empty when the kernel gave no range capability).
    public var iovaRanges: [IOVARange]
    /// How many more mappings `dma_entry_limit` allows, when reported.
    public var availableMappings: UInt32?

    /// The smallest IOMMU page size, the alignment every mapping needs.
    public var minimumPageSize: UInt64 { pageSizes == 0 ? 4096 : pageSizes & (~pageSizes &+ 1) }
}

/// A mapping made through a type1 container: its IOVA and length.
public typealias DMAMapping = IOASMapping
