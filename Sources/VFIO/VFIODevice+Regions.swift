import CIOMMUFD
public import IOMMUFD
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

extension VFIODevice {
    // MARK: Device information

    /// `VFIO_DEVICE_GET_INFO`.
    public func info(fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> VFIODeviceInfo {
        let command = try naming { () throws(IOMMUError) in try VFIODeviceIOCTL.getInfo(seam, fd, fileID: fileID, line: line) }
        return VFIODeviceInfo(flags: command.flags, regionCount: command.num_regions, interruptCount: command.num_irqs)
    }

    /// `VFIO_DEVICE_GET_REGION_INFO` for one region (for PCI: BAR0-5 are 0-5, ROM 6, config 7).
    public func region(_ index: UInt32, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> VFIORegion {
        // Asked with room for the fixed part; with a capability chain, again with the size the kernel wants.
        try naming { () throws(IOMMUError) in
            unsafe try withSizeNegotiation(initialByteCount: MemoryLayout<vfio_region_info>.size, operation: .vfioDeviceGetRegionInfo,
                                    fileID: fileID, line: line) { (buffer) throws(IOMMUError) -> SizedAnswer<VFIORegion> in
                let answer = unsafe try VFIODeviceIOCTL.getRegionInfo(seam, fd, index: index, into: buffer, fileID: fileID, line: line)
                var region = VFIORegion(index: index, flags: answer.flags, size: answer.size, offset: answer.offset)
                guard answer.flags & VFIO_REGION_INFO_FLAG_CAPS != 0 else { return .complete(region) }
                guard Int(answer.argsz) <= buffer.count else { return .needs(byteCount: Int(answer.argsz)) }
                if answer.cap_offset != 0 {
                    region.capabilities = unsafe VFIORegionCapabilities(chain: CapabilityChain(UnsafeRawBufferPointer(buffer), first: answer.cap_offset))
                }
                return .complete(region)
            }
        }
    }

    /// Maps a region (a BAR with the mmap flag) into this process. The region's
    /// accessors are little-endian; on a model of the system (MockKernel) they also
    /// report to the model's `MMIOObserver`, asked for here, once.
    public func map(_ region: VFIORegion, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> MMIORegion {
        try map(region, offset: 0, length: region.size, fileID: fileID, line: line)
    }

    /// Maps `[offset, offset + length)` of a region (page aligned, inside it): a driver that
    /// needs only a BAR's doorbell page (an NVMe controller's queue doorbells at 0x1000)
    /// maps that page alone. Offsets of the returned region start at `offset`'s byte.
    ///
    /// - Throws: `EINVAL` for a region without the mmap flag, an empty or unaligned range,
    ///   or one past the region's end.
    public func map(_ region: VFIORegion, offset: UInt64, length: UInt64, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> MMIORegion {
        var context = IOMMUErrorContext(iova: offset, length: length, path: path)
        context.regionIndex = region.index
        let page: UInt64 = 4096
        guard region.isMappable, length > 0, offset % page == 0, offset <= region.size, length <= region.size - offset else {
            throw IOMMUError(.mmap, .invalidArgument, context, fileID: fileID, line: line)
        }
        try seam.requireOwnProcess(.mmap, context, fileID: fileID, line: line)
        do {
            let base = unsafe try system.mmap(address: nil, length: Int(length), protection: PROT_READ | PROT_WRITE,
                                       flags: MAP_SHARED, fd: fd, offset: Int64(region.offset + offset))
            let observer = unsafe system.mmioObserver(fd: fd, offset: Int64(region.offset + offset))
            return unsafe MMIORegion(base: base, length: Int(length), observer: observer, device: self)
        } catch {
            throw IOMMUError(.mmap, error, context, fileID: fileID, line: line)
        }
    }
}

/// What `VFIO_DEVICE_GET_INFO` reports.
public struct VFIODeviceInfo: Sendable, Hashable {
    /// The raw `VFIO_DEVICE_FLAGS_*` bits (`PCI`, `RESET`, `CAPS`...).
    public var flags: UInt32
    /// The number of regions (`num_regions`); region indexes run from 0 to `regionCount - 1`.
    public var regionCount: UInt32
    /// The number of interrupt indexes (`num_irqs`), e.g. 5 for vfio-pci (INTx, MSI, MSI-X, error, request).
    public var interruptCount: UInt32

    /// Whether the device is a PCI device (`VFIO_DEVICE_FLAGS_PCI`), so PCI region and interrupt indexes apply.
    public var isPCI: Bool { flags & VFIO_DEVICE_FLAGS_PCI != 0 }
    /// Whether `VFIO_DEVICE_RESET` is supported (`VFIO_DEVICE_FLAGS_RESET`).
    public var canReset: Bool { flags & VFIO_DEVICE_FLAGS_RESET != 0 }
}

/// One device region (`VFIO_DEVICE_GET_REGION_INFO`).
public struct VFIORegion: Sendable, Hashable {
    /// The region index: for PCI, BAR0-5 are 0-5, the expansion ROM 6, configuration space 7, VGA 8.
    public var index: UInt32
    /// The raw `VFIO_REGION_INFO_FLAG_*` bits (`READ`, `WRITE`, `MMAP`, `CAPS`).
    public var flags: UInt32
    /// The region's size in bytes (0: the device does not implement it, e.g. an unused BAR).
    public var size: UInt64
    /// Where the region starts in the device descriptor (for pread/pwrite/mmap).
    public var offset: UInt64

    /// Whether the region can be read with `pread` (`VFIO_REGION_INFO_FLAG_READ`).
    public var isReadable: Bool { flags & VFIO_REGION_INFO_FLAG_READ != 0 }
    /// Whether the region can be written with `pwrite` (`VFIO_REGION_INFO_FLAG_WRITE`).
    public var isWritable: Bool { flags & VFIO_REGION_INFO_FLAG_WRITE != 0 }
    /// Whether the region (or its ``VFIORegionCapabilities/sparseAreas``) can be `mmap`ed (`VFIO_REGION_INFO_FLAG_MMAP`).
    public var isMappable: Bool { flags & VFIO_REGION_INFO_FLAG_MMAP != 0 }
    /// What the region's capability chain said, when it had one.
    public var capabilities = VFIORegionCapabilities()

    /// Creates a region description from its index, its `VFIO_REGION_INFO_FLAG_*` bits, its size in bytes, and its offset
    /// in the device descriptor; the capabilities start empty.
    public init(index: UInt32, flags: UInt32, size: UInt64, offset: UInt64) {
        self.index = index
        self.flags = flags
        self.size = size
        self.offset = offset
    }
}

/// The capabilities of a region (`VFIO_REGION_INFO_CAP_*`).
public struct VFIORegionCapabilities: Sendable, Hashable {
    /// One part of a region that may be mapped.
    public struct Area: Sendable, Hashable {
        /// From the start of the region.
        public var offset: UInt64
        /// The area's length in bytes.
        public var size: UInt64
    }

    /// Only these parts may be mapped (for example a BAR around its MSI-X table); `nil`
    /// when the whole region may be, subject to the mmap flag.
    public var sparseAreas: [Area]?
    /// The MSI-X table inside this BAR may be mapped too (`MSIX_MAPPABLE`).
    public var msixMappable = false
    /// A device-specific region's (type, subtype), from `CAP_TYPE`.
    public var type: RegionType?

    /// `VFIO_REGION_INFO_CAP_TYPE`'s pair.
    public struct RegionType: Sendable, Hashable {
        /// The region type: e.g. `VFIO_REGION_TYPE_GFX` (1), or bit 31 (`PCI_VENDOR_TYPE`) ORed with a PCI vendor ID.
        public var type: UInt32
        /// The type-specific subtype, e.g. `VFIO_REGION_SUBTYPE_INTEL_IGD_OPREGION` under the Intel vendor type.
        public var subtype: UInt32
    }

    /// Creates an empty capability set: no sparse areas, MSI-X table not mappable, no device-specific type.
    public init() {}

    init(chain: CapabilityChain) {
        for unsafe capability in unsafe chain {
            switch unsafe capability.id {
            case VFIO_REGION_INFO_CAP_SPARSE_MMAP:
                guard unsafe capability.body.count >= 8 else { continue }
                let count = unsafe Int(capability.body.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
                var areas: [Area] = []
                for index in 0..<count {
                    let offset = 8 + index * MemoryLayout<vfio_region_sparse_mmap_area>.size
                    guard unsafe offset + MemoryLayout<vfio_region_sparse_mmap_area>.size <= capability.body.count else { break }
                    let area = unsafe capability.body.loadUnaligned(fromByteOffset: offset, as: vfio_region_sparse_mmap_area.self)
                    areas.append(Area(offset: area.offset, size: area.size))
                }
                sparseAreas = areas
            case VFIO_REGION_INFO_CAP_MSIX_MAPPABLE:
                msixMappable = true
            case VFIO_REGION_INFO_CAP_TYPE:
                guard unsafe capability.body.count >= 8 else { continue }
                type = unsafe RegionType(type: capability.body.loadUnaligned(fromByteOffset: 0, as: UInt32.self),
                                  subtype: capability.body.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
            default:
                continue
            }
        }
    }
}
