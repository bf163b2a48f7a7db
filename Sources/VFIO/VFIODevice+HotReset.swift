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
    /// The device's PCI address (`segment`, `bus` and `devfn` of `struct vfio_pci_dependent_device`).
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
    public func hotResetDependencies(fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> [HotResetDependency] {
        let headerSize = MemoryLayout<vfio_pci_hot_reset_info>.size
        let entrySize = MemoryLayout<vfio_pci_dependent_device>.size
        // Asked with room for the header only; ENOSPC says how many entries to make room for.
        let (answer, entries) = try naming { () throws(IOMMUError) in
            unsafe try withSizeNegotiation(initialByteCount: headerSize, operation: .vfioDeviceGetPCIHotResetInfo, fileID: fileID, line: line) {
                (buffer) throws(IOMMUError) -> SizedAnswer<(vfio_pci_hot_reset_info, [vfio_pci_dependent_device])> in
                do throws(IOMMUError) {
                    let answer = unsafe try VFIODeviceIOCTL.getPCIHotResetInfo(seam, fd, into: buffer, fileID: fileID, line: line)
                    let count = min(Int(answer.count), (buffer.count - headerSize) / entrySize)
                    let entries = (0..<count).map { unsafe buffer.loadUnaligned(fromByteOffset: headerSize + $0 * entrySize, as: vfio_pci_dependent_device.self) }
                    return .complete((answer, entries))
                } catch {
                    guard error.errno == .noSpace, let count = error.context.reportedCount else { throw error }
                    return .needs(byteCount: headerSize + Int(count) * entrySize)
                }
            }
        }
        let isDeviceID = answer.flags & VFIO_PCI_HOT_RESET_FLAG_DEV_ID != 0
        return entries.map { entry in
            HotResetDependency(groupOrDeviceID: entry.group_id, isDeviceID: isDeviceID,
                               address: PCIAddress(domain: entry.segment, bus: entry.bus, device: entry.devfn >> 3, function: entry.devfn & 7))
        }
    }
}
