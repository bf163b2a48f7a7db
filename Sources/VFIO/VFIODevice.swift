import CIOMMUFD
public import IOMMUFD
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A PCI device owned through its VFIO device cdev (`/dev/vfio/devices/vfioN`) and
/// bound to an iommufd: the modern path, where the device's DMA goes through an IOAS
/// or HWPT of that iommufd.
///
/// Closing the device (when the value goes away) unbinds it; the iommufd it was bound
/// to is kept alive until then.
public final class VFIODevice {
    /// The device cdev's file descriptor.
    public let fileDescriptor: Int32
    /// The cdev path it was opened from.
    public let path: String
    let system: any SystemInterface
    /// The iommufd the device is bound to, once bound.
    public private(set) var iommufd: IOMMUFD?
    /// The device's id in that iommufd, once bound.
    public private(set) var deviceID: IOMMUObjectID<DeviceObject>?
    /// The page table the device is attached to (an automatic or explicit HWPT), if any.
    public private(set) var attachedPageTable: HWPTID?
    /// Where config space starts in the device descriptor: asked once, then kept (it
    /// does not change while the descriptor is open).
    private var configurationOffset: UInt64?

    /// Opens a VFIO device cdev read-write with `O_CLOEXEC`.
    public init(cdevPath: String, system: any SystemInterface = LinuxSystem()) throws(IOMMUError) {
        do {
            fileDescriptor = try system.open(cdevPath, flags: O_RDWR | O_CLOEXEC, mode: 0)
        } catch {
            throw IOMMUError(.open, error, IOMMUErrorContext(path: cdevPath))
        }
        self.path = cdevPath
        self.system = system
    }

    /// Opens the cdev of a PCI device bound to vfio-pci, found through
    /// `/sys/bus/pci/devices/<address>/vfio-dev/vfioN`.
    public convenience init(_ address: PCIAddress, system: any SystemInterface = LinuxSystem()) throws(IOMMUError) {
        try self.init(cdevPath: Self.cdevPath(of: address, system: system), system: system)
    }

    /// The cdev path of a PCI device bound to vfio-pci.
    ///
    /// - Throws: `ENOENT` from `opendir` when the device is not bound to vfio-pci (or the
    ///   kernel lacks CONFIG_VFIO_DEVICE_CDEV).
    public static func cdevPath(of address: PCIAddress, system: any SystemInterface = LinuxSystem()) throws(IOMMUError) -> String {
        let directory = address.sysfsPath + "/vfio-dev"
        let names: [String]
        do { names = try system.listDirectory(directory) } catch {
            throw IOMMUError(.listDirectory, error, IOMMUErrorContext(path: directory))
        }
        guard let name = names.first(where: { $0.hasPrefix("vfio") }) else {
            throw IOMMUError(.listDirectory, .noSuchFileOrDirectory, IOMMUErrorContext(path: directory))
        }
        return "/dev/vfio/devices/" + name
    }

    deinit {
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
    public func bind(to iommufd: IOMMUFD, fileID: String = #fileID, line: Int = #line) throws(IOMMUError) -> IOMMUObjectID<DeviceObject> {
        var command = vfio_device_bind_iommufd()
        command.argsz = UInt32(MemoryLayout<vfio_device_bind_iommufd>.size)
        command.iommufd = iommufd.fileDescriptor
        try perform(VFIO_DEVICE_BIND_IOMMUFD, &command, .vfioDeviceBindIOMMUFD,
                    IOMMUErrorContext(fileDescriptor: iommufd.fileDescriptor, path: path), fileID: fileID, line: line)
        self.iommufd = iommufd
        let id = IOMMUObjectID<DeviceObject>(rawValue: command.out_devid)
        deviceID = id
        return id
    }

    /// Attaches the device to an IOAS (the kernel finds or makes a compatible HWPT) and
    /// returns the HWPT it is now attached to. Attaching again replaces the page table
    /// without a window where DMA is blocked.
    @discardableResult
    public func attach(to ioas: IOAS, fileID: String = #fileID, line: Int = #line) throws(IOMMUError) -> HWPTID {
        try attach(pageTable: ioas.id.rawValue, fileID: fileID, line: line)
    }

    /// Attaches the device to an explicit HWPT.
    @discardableResult
    public func attach(to hwpt: HWPTID, fileID: String = #fileID, line: Int = #line) throws(IOMMUError) -> HWPTID {
        try attach(pageTable: hwpt.rawValue, fileID: fileID, line: line)
    }

    /// Attaches to a page table given by its raw id (IOAS or HWPT).
    @discardableResult
    public func attach(pageTable rawID: UInt32, fileID: String = #fileID, line: Int = #line) throws(IOMMUError) -> HWPTID {
        var command = vfio_device_attach_iommufd_pt()
        command.argsz = UInt32(MemoryLayout<vfio_device_attach_iommufd_pt>.size)
        command.pt_id = rawID
        try perform(VFIO_DEVICE_ATTACH_IOMMUFD_PT, &command, .vfioDeviceAttachIOMMUFDPT,
                    IOMMUErrorContext(objectID: rawID, path: path), fileID: fileID, line: line)
        let hwpt = HWPTID(rawValue: command.pt_id)
        attachedPageTable = hwpt
        return hwpt
    }

    /// Detaches the device from its page table; its DMA is blocked afterwards.
    public func detach(fileID: String = #fileID, line: Int = #line) throws(IOMMUError) {
        var command = vfio_device_detach_iommufd_pt()
        command.argsz = UInt32(MemoryLayout<vfio_device_detach_iommufd_pt>.size)
        try perform(VFIO_DEVICE_DETACH_IOMMUFD_PT, &command, .vfioDeviceDetachIOMMUFDPT,
                    IOMMUErrorContext(path: path), fileID: fileID, line: line)
        attachedPageTable = nil
    }

    // MARK: Device information

    /// `VFIO_DEVICE_GET_INFO`.
    public func info(fileID: String = #fileID, line: Int = #line) throws(IOMMUError) -> VFIODeviceInfo {
        var command = vfio_device_info()
        command.argsz = UInt32(MemoryLayout<vfio_device_info>.size)
        try perform(VFIO_DEVICE_GET_INFO, &command, .vfioDeviceGetInfo, IOMMUErrorContext(path: path), fileID: fileID, line: line)
        return VFIODeviceInfo(flags: command.flags, regionCount: command.num_regions, interruptCount: command.num_irqs)
    }

    /// `VFIO_DEVICE_GET_REGION_INFO` for one region (for PCI: BAR0-5 are 0-5, ROM 6, config 7).
    public func region(_ index: UInt32, fileID: String = #fileID, line: Int = #line) throws(IOMMUError) -> VFIORegion {
        var command = vfio_region_info()
        command.argsz = UInt32(MemoryLayout<vfio_region_info>.size)
        command.index = index
        try perform(VFIO_DEVICE_GET_REGION_INFO, &command, .vfioDeviceGetRegionInfo,
                    IOMMUErrorContext(objectID: index, path: path), fileID: fileID, line: line)
        return VFIORegion(index: index, flags: command.flags, size: command.size, offset: command.offset)
    }

    /// Maps a region (a BAR with the mmap flag) into this process.
    public func map(_ region: VFIORegion, fileID: String = #fileID, line: Int = #line) throws(IOMMUError) -> MMIORegion {
        guard region.isMappable, region.size > 0 else {
            throw IOMMUError(.mmap, .invalidArgument, IOMMUErrorContext(objectID: region.index, length: region.size, path: path), fileID: fileID, line: line)
        }
        do {
            let base = try system.mmap(address: nil, length: Int(region.size), protection: PROT_READ | PROT_WRITE,
                                       flags: MAP_SHARED, fd: fileDescriptor, offset: Int64(region.offset))
            return MMIORegion(base: base, length: Int(region.size), system: system)
        } catch {
            throw IOMMUError(.mmap, error, IOMMUErrorContext(objectID: region.index, length: region.size, path: path), fileID: fileID, line: line)
        }
    }

    // MARK: PCI configuration space

    /// Reads a little-endian value from PCI configuration space.
    public func readConfiguration<Value: FixedWidthInteger>(_ type: Value.Type, at offset: UInt64, fileID: String = #fileID, line: Int = #line) throws(IOMMUError) -> Value {
        let base = try configurationBase(fileID: fileID, line: line)
        var value = Value.zero
        let count: Int
        do {
            count = try withUnsafeMutableBytes(of: &value) { (bytes) throws(Errno) -> Int in
                try system.pread(fileDescriptor, into: bytes, offset: Int64(base + offset))
            }
        } catch {
            throw IOMMUError(.pread, error, IOMMUErrorContext(iova: offset, path: path), fileID: fileID, line: line)
        }
        guard count == MemoryLayout<Value>.size else {
            throw IOMMUError(.pread, .ioError, IOMMUErrorContext(iova: offset, length: UInt64(count), path: path), fileID: fileID, line: line)
        }
        return Value(littleEndian: value)
    }

    /// Writes a little-endian value to PCI configuration space.
    public func writeConfiguration<Value: FixedWidthInteger>(_ value: Value, at offset: UInt64, fileID: String = #fileID, line: Int = #line) throws(IOMMUError) {
        let base = try configurationBase(fileID: fileID, line: line)
        var littleEndian = value.littleEndian
        let count: Int
        do {
            count = try withUnsafeBytes(of: &littleEndian) { (bytes) throws(Errno) -> Int in
                try system.pwrite(fileDescriptor, from: bytes, offset: Int64(base + offset))
            }
        } catch {
            throw IOMMUError(.pwrite, error, IOMMUErrorContext(iova: offset, path: path), fileID: fileID, line: line)
        }
        guard count == MemoryLayout<Value>.size else {
            throw IOMMUError(.pwrite, .ioError, IOMMUErrorContext(iova: offset, length: UInt64(count), path: path), fileID: fileID, line: line)
        }
    }

    private func configurationBase(fileID: String, line: Int) throws(IOMMUError) -> UInt64 {
        if let configurationOffset { return configurationOffset }
        let offset = try region(VFIO_PCI_CONFIG_REGION_INDEX, fileID: fileID, line: line).offset
        configurationOffset = offset
        return offset
    }

    /// Sets or clears Bus Master Enable (command register bit 2). vfio-pci leaves it
    /// clear: a driver must set it before the device's DMA does anything, and clear it
    /// to quiesce the device before unmapping its buffers.
    public func setBusMaster(_ enabled: Bool, fileID: String = #fileID, line: Int = #line) throws(IOMMUError) {
        let command = try readConfiguration(UInt16.self, at: PCIConfiguration.command, fileID: fileID, line: line)
        let updated = enabled ? command | PCIConfiguration.commandMemorySpace | PCIConfiguration.commandBusMaster
                              : command & ~PCIConfiguration.commandBusMaster
        if updated != command { try writeConfiguration(updated, at: PCIConfiguration.command, fileID: fileID, line: line) }
    }

    /// `VFIO_DEVICE_RESET`: a function-level (or other) reset, when the device offers one.
    public func reset(fileID: String = #fileID, line: Int = #line) throws(IOMMUError) {
        do { _ = try system.ioctl(fileDescriptor, VFIO_DEVICE_RESET, nil) } catch {
            throw IOMMUError(.vfioDeviceReset, error, IOMMUErrorContext(path: path), fileID: fileID, line: line)
        }
    }

    private func perform<Command>(
        _ request: UInt, _ command: inout Command, _ operation: IOMMUOperation, _ context: @autoclosure () -> IOMMUErrorContext,
        fileID: String, line: Int
    ) throws(IOMMUError) {
        do {
            _ = try withUnsafeMutableBytes(of: &command) { (bytes) throws(Errno) -> Int32 in
                try system.ioctl(fileDescriptor, request, bytes.baseAddress)
            }
        } catch {
            throw IOMMUError(operation, error, context(), fileID: fileID, line: line)
        }
    }
}

/// What `VFIO_DEVICE_GET_INFO` reports.
public struct VFIODeviceInfo: Sendable, Hashable {
    public var flags: UInt32
    public var regionCount: UInt32
    public var interruptCount: UInt32

    public var isPCI: Bool { flags & VFIO_DEVICE_FLAGS_PCI != 0 }
    public var canReset: Bool { flags & VFIO_DEVICE_FLAGS_RESET != 0 }
}

/// One device region (`VFIO_DEVICE_GET_REGION_INFO`).
public struct VFIORegion: Sendable, Hashable {
    public var index: UInt32
    public var flags: UInt32
    public var size: UInt64
    /// Where the region starts in the device descriptor (for pread/pwrite/mmap).
    public var offset: UInt64

    public var isReadable: Bool { flags & VFIO_REGION_INFO_FLAG_READ != 0 }
    public var isWritable: Bool { flags & VFIO_REGION_INFO_FLAG_WRITE != 0 }
    public var isMappable: Bool { flags & VFIO_REGION_INFO_FLAG_MMAP != 0 }
}

/// Offsets and bits of the standard PCI configuration header.
public enum PCIConfiguration {
    public static let vendorID: UInt64 = 0x00
    public static let deviceID: UInt64 = 0x02
    public static let command: UInt64 = 0x04
    public static let status: UInt64 = 0x06
    public static let classRevision: UInt64 = 0x08
    public static let commandMemorySpace: UInt16 = 1 << 1
    public static let commandBusMaster: UInt16 = 1 << 2
}
