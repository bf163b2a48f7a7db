import CIOMMUFD
public import IOMMUFD
import SystemPackage

/// One device that a bus/slot reset of this device would also reset.
public struct HotResetDependency: Sendable, Hashable {
    /// Its IOMMU group (legacy path), or its iommufd device id (cdev path, where
    /// `VFIO_PCI_DEVID_NOT_OWNED` marks a device this process has not bound).
    public var groupOrDeviceID: UInt32
    /// Whether ``groupOrDeviceID`` is an iommufd device id.
    public var isDeviceID: Bool
    public var address: PCIAddress

    /// On the cdev path: whether this process owns the device (it must, for the reset).
    public var isOwned: Bool { !isDeviceID || groupOrDeviceID != VFIO_PCI_DEVID_NOT_OWNED }
}

extension VFIODevice {
    /// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`: the devices a hot reset (secondary bus or
    /// slot reset) would affect, this one included. Asked twice: the first answer
    /// (`ENOSPC`) says how many there are.
    ///
    /// - Throws: `ENODEV` when the device cannot be hot reset (no bus or slot reset).
    public func hotResetDependencies(fileID: String = #fileID, line: Int = #line) throws(IOMMUError) -> [HotResetDependency] {
        let headerSize = MemoryLayout<vfio_pci_hot_reset_info>.size
        var header = vfio_pci_hot_reset_info()
        header.argsz = UInt32(headerSize)
        do throws(Errno) {
            _ = try withUnsafeMutableBytes(of: &header) { (bytes) throws(Errno) -> Int32 in
                try system.ioctl(fileDescriptor, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, bytes.baseAddress)
            }
            return []
        } catch where error == .noSpace {
            // Expected: count now says how many entries to make room for.
        } catch {
            throw IOMMUError(.vfioDeviceGetPCIHotResetInfo, error, IOMMUErrorContext(path: path), fileID: fileID, line: line)
        }
        let entrySize = MemoryLayout<vfio_pci_dependent_device>.size
        let count = Int(header.count)
        let size = headerSize + count * entrySize
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 8)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        var request = vfio_pci_hot_reset_info()
        request.argsz = UInt32(size)
        buffer.storeBytes(of: request, as: vfio_pci_hot_reset_info.self)
        do throws(Errno) { _ = try system.ioctl(fileDescriptor, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, buffer.baseAddress) } catch {
            throw IOMMUError(.vfioDeviceGetPCIHotResetInfo, error, IOMMUErrorContext(length: UInt64(size), path: path), fileID: fileID, line: line)
        }
        let answer = buffer.load(as: vfio_pci_hot_reset_info.self)
        let isDeviceID = answer.flags & VFIO_PCI_HOT_RESET_FLAG_DEV_ID != 0
        return (0..<min(count, Int(answer.count))).map { index in
            let offset = headerSize + index * entrySize
            let id = buffer.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
            let segment = buffer.loadUnaligned(fromByteOffset: offset + 4, as: UInt16.self)
            let bus = buffer.load(fromByteOffset: offset + 6, as: UInt8.self)
            let devfn = buffer.load(fromByteOffset: offset + 7, as: UInt8.self)
            return HotResetDependency(groupOrDeviceID: id, isDeviceID: isDeviceID,
                                      address: PCIAddress(domain: segment, bus: bus, device: devfn >> 3, function: devfn & 7))
        }
    }
}
