import CIOMMUFD
public import IOMMUFD
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A PCI device owned through VFIO: either its device cdev (`/dev/vfio/devices/vfioN`)
/// bound to an iommufd, the modern path, or a descriptor from its legacy group
/// (`VFIO_GROUP_GET_DEVICE_FD`) whose DMA goes through a type1 container.
///
/// Everything but binding and attaching (regions, BARs, config space, interrupts,
/// reset) is the same ioctl on either descriptor, so it is one type. ``VFIOPCIDevice``
/// chooses the path and pairs the device with its DMA address space.
///
/// Closing the device (when the value goes away) clears Bus Master Enable if this
/// value set it, so the device is quiesced before anything it could reach is freed;
/// then the descriptor is closed, which unbinds it (cdev) or releases it (group).
public final class VFIODevice {
    /// How a device descriptor was obtained.
    public enum Path: String, Sendable, Hashable {
        /// `/dev/vfio/devices/vfioN` + `VFIO_DEVICE_BIND_IOMMUFD`.
        case iommufdCdev = "iommufd"
        /// `/dev/vfio/<group>` + `VFIO_GROUP_GET_DEVICE_FD`, DMA through a type1 container.
        case legacyGroup = "legacy-type1"
    }

    /// The device descriptor.
    public let fileDescriptor: Int32
    /// The cdev path it was opened from, or `group N: <address>` on the legacy path.
    public let path: String
    /// Which path the descriptor came from.
    public let openedThrough: Path
    let system: any SystemInterface
    /// The legacy group the descriptor came from (kept alive with the device).
    public let group: VFIOGroup?
    /// The iommufd the device is bound to, once bound.
    public private(set) var iommufd: IOMMUFD?
    /// The device's id in that iommufd, once bound.
    public private(set) var deviceID: IOMMUObjectID<DeviceObject>?
    /// The page table the device is attached to (an automatic or explicit HWPT), if any.
    public private(set) var attachedPageTable: HWPTID?
    /// The IOAS the device is attached to, kept alive until the device is closed (an
    /// IOAS cannot be destroyed while a device uses it).
    public private(set) var attachedIOAS: IOAS?
    /// Where config space starts in the device descriptor: asked once, then kept (it
    /// does not change while the descriptor is open).
    private var configurationOffset: UInt64?
    /// Whether this value turned Bus Master Enable on (and so must turn it off).
    private var enabledBusMaster = false

    /// Opens a VFIO device cdev read-write with `O_CLOEXEC`.
    public init(cdevPath: String, system: any SystemInterface = LinuxSystem()) throws(IOMMUError) {
        do {
            fileDescriptor = try system.open(cdevPath, flags: O_RDWR | O_CLOEXEC, mode: 0)
        } catch {
            throw IOMMUError(.open, error, IOMMUErrorContext(path: cdevPath))
        }
        self.path = cdevPath
        self.openedThrough = .iommufdCdev
        self.system = system
        self.group = nil
    }

    /// Opens the cdev of a PCI device bound to vfio-pci, found through
    /// `/sys/bus/pci/devices/<address>/vfio-dev/vfioN`.
    public convenience init(_ address: PCIAddress, system: any SystemInterface = LinuxSystem()) throws(IOMMUError) {
        try self.init(cdevPath: Self.cdevPath(of: address, system: system), system: system)
    }

    /// Opens a device through its legacy group (which must have joined a container).
    /// `virtualFunctionToken` is the PF owner's VF token, needed to open an SR-IOV VF.
    public init(_ address: PCIAddress, group: VFIOGroup, virtualFunctionToken: VFToken? = nil) throws(IOMMUError) {
        fileDescriptor = try group.openDevice(address, virtualFunctionToken: virtualFunctionToken)
        self.path = "group \(group.number): \(address)"
        self.openedThrough = .legacyGroup
        self.system = group.system
        self.group = group
    }

    /// The cdev path of a PCI device bound to vfio-pci.
    ///
    /// - Throws: `ENOENT` from `opendir` when the device is not bound to vfio-pci (or the
    ///   kernel lacks CONFIG_VFIO_DEVICE_CDEV).
    public static func cdevPath(of address: PCIAddress, system: any SystemInterface = LinuxSystem()) throws(IOMMUError) -> String {
        let directory = address.sysfsPath + "/vfio-dev"
        func notOnVFIO(_ error: Errno) -> IOMMUError {
            var context = IOMMUErrorContext(path: directory)
            context.pciAddress = address.description
            context.driver = (try? system.readLink(address.sysfsPath + "/driver"))?.split(separator: "/").last.map(String.init)
            return IOMMUError(.listDirectory, error, context)
        }
        let names: [String]
        do { names = try system.listDirectory(directory) } catch {
            throw notOnVFIO(error)
        }
        guard let name = names.first(where: { $0.hasPrefix("vfio") }) else { throw notOnVFIO(.noSuchFileOrDirectory) }
        return "/dev/vfio/devices/" + name
    }

    deinit {
        if enabledBusMaster { try? setBusMaster(false) }
        try? system.close(fileDescriptor)
    }

    // MARK: iommufd

    /// Binds the device to an iommufd (`VFIO_DEVICE_BIND_IOMMUFD`); afterwards the
    /// device is owned by this process and can be attached to that iommufd's page tables.
    ///
    /// - Throws: `EINVAL` when already bound (also through another descriptor), `EBUSY`
    ///   when its group is in use through the legacy path, `EPERM` without interrupt
    ///   remapping.
    @discardableResult
    public func bind(
        to iommufd: IOMMUFD, virtualFunctionToken: VFToken? = nil, fileID: StaticString = #fileID, line: Int = #line
    ) throws(IOMMUError) -> IOMMUObjectID<DeviceObject> {
        guard openedThrough == .iommufdCdev else {
            throw IOMMUError(.vfioDeviceBindIOMMUFD, .inappropriateIOCTLForDevice, IOMMUErrorContext(path: path), fileID: fileID, line: line)
        }
        var token: (UInt64, UInt64) = (0, 0)
        let deviceID = try withUnsafeMutableBytes(of: &token) { (tokenBytes) throws(IOMMUError) -> UInt32 in
            var tokenAddress: UInt64 = 0
            if let virtualFunctionToken {
                tokenBytes.copyBytes(from: virtualFunctionToken.bytes)
                tokenAddress = UInt64(UInt(bitPattern: tokenBytes.baseAddress))
            }
            return try naming { () throws(IOMMUError) in
                try VFIODeviceIOCTL.bind(system, fileDescriptor, iommufd: iommufd.fileDescriptor, token: tokenAddress, fileID: fileID, line: line)
            }
        }
        self.iommufd = iommufd
        let id = IOMMUObjectID<DeviceObject>(rawValue: deviceID)
        self.deviceID = id
        return id
    }

    /// Attaches the device to an IOAS (the kernel finds or makes a compatible HWPT) and
    /// returns the HWPT it is now attached to. Attaching again replaces the page table
    /// without a window where DMA is blocked.
    @discardableResult
    public func attach(to ioas: IOAS, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> HWPTID {
        let hwpt = try attach(pageTable: try ioas.liveID(.vfioDeviceAttachIOMMUFDPT, fileID: fileID, line: line), fileID: fileID, line: line)
        attachedIOAS = ioas
        return hwpt
    }

    /// Attaches the device to an explicit HWPT.
    @discardableResult
    public func attach(to hwpt: HWPTID, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> HWPTID {
        try attach(pageTable: hwpt.rawValue, fileID: fileID, line: line)
    }

    /// Attaches to a page table given by its raw id (IOAS or HWPT).
    @discardableResult
    public func attach(pageTable rawID: UInt32, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> HWPTID {
        let hwpt = HWPTID(rawValue: try naming { () throws(IOMMUError) in
            try VFIODeviceIOCTL.attach(system, fileDescriptor, pageTable: rawID, fileID: fileID, line: line)
        })
        attachedPageTable = hwpt
        attachedIOAS = nil
        return hwpt
    }

    /// Detaches the device from its page table; its DMA is blocked afterwards.
    public func detach(fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        try naming { () throws(IOMMUError) in try VFIODeviceIOCTL.detach(system, fileDescriptor, fileID: fileID, line: line) }
        attachedPageTable = nil
        attachedIOAS = nil
    }

    // MARK: Device information

    /// `VFIO_DEVICE_GET_INFO`.
    public func info(fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> VFIODeviceInfo {
        let command = try naming { () throws(IOMMUError) in try VFIODeviceIOCTL.getInfo(system, fileDescriptor, fileID: fileID, line: line) }
        return VFIODeviceInfo(flags: command.flags, regionCount: command.num_regions, interruptCount: command.num_irqs)
    }

    /// `VFIO_DEVICE_GET_REGION_INFO` for one region (for PCI: BAR0-5 are 0-5, ROM 6, config 7).
    public func region(_ index: UInt32, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> VFIORegion {
        // Asked with room for the fixed part; with a capability chain, again with the size the kernel wants.
        try naming { () throws(IOMMUError) in
            try withSizeNegotiation(initialByteCount: MemoryLayout<vfio_region_info>.size, operation: .vfioDeviceGetRegionInfo,
                                    fileID: fileID, line: line) { (buffer) throws(IOMMUError) -> SizedAnswer<VFIORegion> in
                let answer = try VFIODeviceIOCTL.getRegionInfo(system, fileDescriptor, index: index, into: buffer, fileID: fileID, line: line)
                var region = VFIORegion(index: index, flags: answer.flags, size: answer.size, offset: answer.offset)
                guard answer.flags & VFIO_REGION_INFO_FLAG_CAPS != 0 else { return .complete(region) }
                guard Int(answer.argsz) <= buffer.count else { return .needs(byteCount: Int(answer.argsz)) }
                if answer.cap_offset != 0 {
                    region.capabilities = VFIORegionCapabilities(chain: CapabilityChain(UnsafeRawBufferPointer(buffer), first: answer.cap_offset))
                }
                return .complete(region)
            }
        }
    }

    /// Maps a region (a BAR with the mmap flag) into this process. The region's
    /// accessors are little-endian; on a model of the system (MockKernel) they also
    /// report to the model's ``MMIOObserver``, asked for here, once.
    public func map(_ region: VFIORegion, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> MMIORegion {
        guard region.isMappable, region.size > 0 else {
            var context = IOMMUErrorContext(length: region.size, path: path)
            context.regionIndex = region.index
            throw IOMMUError(.mmap, .invalidArgument, context, fileID: fileID, line: line)
        }
        do {
            let base = try system.mmap(address: nil, length: Int(region.size), protection: PROT_READ | PROT_WRITE,
                                       flags: MAP_SHARED, fd: fileDescriptor, offset: Int64(region.offset))
            let observer = system.mmioObserver(fd: fileDescriptor, offset: Int64(region.offset))
            return MMIORegion(base: base, length: Int(region.size), observer: observer, device: self)
        } catch {
            var context = IOMMUErrorContext(length: region.size, path: path)
            context.regionIndex = region.index
            throw IOMMUError(.mmap, error, context, fileID: fileID, line: line)
        }
    }

    // MARK: PCI configuration space

    /// Reads a little-endian value from PCI configuration space.
    public func readConfiguration<Value: FixedWidthInteger>(_ type: Value.Type, at offset: UInt64, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> Value {
        let base = try configurationBase(fileID: fileID, line: line)
        var value = Value.zero
        let count: Int
        do {
            count = try withUnsafeMutableBytes(of: &value) { (bytes) throws(Errno) -> Int in
                try system.pread(fileDescriptor, into: bytes, offset: Int64(base + offset))
            }
        } catch {
            throw IOMMUError(.pread, error, configurationContext(offset), fileID: fileID, line: line)
        }
        guard count == MemoryLayout<Value>.size else {
            var context = configurationContext(offset)
            context.length = UInt64(count)
            throw IOMMUError(.pread, .ioError, context, fileID: fileID, line: line)
        }
        return Value(littleEndian: value)
    }

    /// Writes a little-endian value to PCI configuration space.
    public func writeConfiguration<Value: FixedWidthInteger>(_ value: Value, at offset: UInt64, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        let base = try configurationBase(fileID: fileID, line: line)
        var littleEndian = value.littleEndian
        let count: Int
        do {
            count = try withUnsafeBytes(of: &littleEndian) { (bytes) throws(Errno) -> Int in
                try system.pwrite(fileDescriptor, from: bytes, offset: Int64(base + offset))
            }
        } catch {
            throw IOMMUError(.pwrite, error, configurationContext(offset), fileID: fileID, line: line)
        }
        guard count == MemoryLayout<Value>.size else {
            var context = configurationContext(offset)
            context.length = UInt64(count)
            throw IOMMUError(.pwrite, .ioError, context, fileID: fileID, line: line)
        }
    }

    private func configurationContext(_ offset: UInt64) -> IOMMUErrorContext {
        var context = IOMMUErrorContext(path: path)
        context.configurationOffset = offset
        return context
    }

    private func configurationBase(fileID: StaticString, line: Int) throws(IOMMUError) -> UInt64 {
        if let configurationOffset { return configurationOffset }
        let offset = try region(VFIO_PCI_CONFIG_REGION_INDEX, fileID: fileID, line: line).offset
        configurationOffset = offset
        return offset
    }

    /// Sets or clears Bus Master Enable (command register bit 2). vfio-pci leaves it
    /// clear: a driver must set it before the device's DMA does anything, and clear it
    /// to quiesce the device before unmapping its buffers.
    public func setBusMaster(_ enabled: Bool, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        let command = try readConfiguration(UInt16.self, at: PCIConfiguration.command, fileID: fileID, line: line)
        let updated = enabled ? command | PCIConfiguration.commandMemorySpace | PCIConfiguration.commandBusMaster
                              : command & ~PCIConfiguration.commandBusMaster
        if updated != command { try writeConfiguration(updated, at: PCIConfiguration.command, fileID: fileID, line: line) }
        enabledBusMaster = enabled
    }

    /// `VFIO_DEVICE_RESET`: a function-level (or other) reset, when the device offers one.
    public func reset(fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        try naming { () throws(IOMMUError) in try VFIODeviceIOCTL.reset(system, fileDescriptor, fileID: fileID, line: line) }
    }

    /// Runs one catalogue call and adds the device's path to its error.
    func naming<Value>(_ call: () throws(IOMMUError) -> Value) throws(IOMMUError) -> Value {
        try withErrorPath(path, call)
    }
}

/// Runs `call` and adds `path` (the device node or group it went through) to its error.
func withErrorPath<Value>(_ path: String, _ call: () throws(IOMMUError) -> Value) throws(IOMMUError) -> Value {
    do {
        return try call()
    } catch {
        var error = error
        error.context.path = path
        throw error
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
        for capability in chain {
            switch capability.id {
            case VFIO_REGION_INFO_CAP_SPARSE_MMAP:
                guard capability.body.count >= 8 else { continue }
                let count = Int(capability.body.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
                var areas: [Area] = []
                for index in 0..<count {
                    let offset = 8 + index * MemoryLayout<vfio_region_sparse_mmap_area>.size
                    guard offset + MemoryLayout<vfio_region_sparse_mmap_area>.size <= capability.body.count else { break }
                    let area = capability.body.loadUnaligned(fromByteOffset: offset, as: vfio_region_sparse_mmap_area.self)
                    areas.append(Area(offset: area.offset, size: area.size))
                }
                sparseAreas = areas
            case VFIO_REGION_INFO_CAP_MSIX_MAPPABLE:
                msixMappable = true
            case VFIO_REGION_INFO_CAP_TYPE:
                guard capability.body.count >= 8 else { continue }
                type = RegionType(type: capability.body.loadUnaligned(fromByteOffset: 0, as: UInt32.self),
                                  subtype: capability.body.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
            default:
                continue
            }
        }
    }
}

/// Offsets and bits of the standard PCI configuration header.
public enum PCIConfiguration {
    /// Offset of the 16-bit Vendor ID register (0xffff when no function answers).
    public static let vendorID: UInt64 = 0x00
    /// Offset of the 16-bit Device ID register.
    public static let deviceID: UInt64 = 0x02
    /// Offset of the 16-bit Command register.
    public static let command: UInt64 = 0x04
    /// Offset of the 16-bit Status register.
    public static let status: UInt64 = 0x06
    /// Offset of the 32-bit word holding the Revision ID (low byte) and the 24-bit class code above it.
    public static let classRevision: UInt64 = 0x08
    /// Command register bit 1, Memory Space Enable: the function answers accesses to its memory BARs.
    public static let commandMemorySpace: UInt16 = 1 << 1
    /// Command register bit 2, Bus Master Enable: the function may issue DMA (and MSI writes).
    public static let commandBusMaster: UInt16 = 1 << 2
}
