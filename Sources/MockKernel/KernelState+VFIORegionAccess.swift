import IOMMUFDSystem
import CIOMMUFD
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

// Regions through the device descriptor: pread/pwrite of config space and BARs, and BAR mmaps.

extension KernelState {
    // MARK: Regions through the descriptor

    /// Where a `pread`/`pwrite` at `offset` lands: config space or a BAR's storage.
    mutating func deviceAccess(_ fileID: Int, offset: Int64, write: Bool) throws(Errno) -> (index: Int, start: Int) {
        guard let file = vfio.deviceFiles[fileID] else { throw .badFileDescriptor }
        if file.group == nil && file.boundDeviceID == nil { throw .invalidArgument }
        let index = Int(UInt64(offset) >> vfioRegionShift)
        let start = Int(UInt64(offset) & ((1 << vfioRegionShift) - 1))
        let device = configuration.pciDevices[file.deviceIndex]
        let size: Int
        switch index {
        case Int(VFIO_PCI_CONFIG_REGION_INDEX): size = device.configurationSize
        case 0..<6: size = Int(device.barSizes[index])
        case Int(VFIO_PCI_ROM_REGION_INDEX) where device.romSize > 0:
            // vfio_pci_rw (vfio_pci_core.c:1657-1659): the ROM is read-only, a write EINVAL.
            if write { throw .invalidArgument }
            // The ROM's contents are not modelled: a read is refused loudly, as an unmodelled command is.
            unmodelledCalls.append(.pread)
            throw .noFunction
        default: throw .invalidArgument
        }
        // vfio_pci_config_rw (vfio_pci_config.c:1895-1897): config space past its end is EFAULT.
        guard start < size else { throw index == Int(VFIO_PCI_CONFIG_REGION_INDEX) ? .badAddress : .invalidArgument }
        return (index, start)
    }

    mutating func deviceRead(_ fileID: Int, into buffer: UnsafeMutableRawBufferPointer, offset: Int64) throws(Errno) -> Int {
        let (index, start) = try deviceAccess(fileID, offset: offset, write: false)
        let deviceIndex = vfio.deviceFiles[fileID]!.deviceIndex
        let runtime = vfio.devices[deviceIndex]!
        if index == Int(VFIO_PCI_CONFIG_REGION_INDEX) {
            // No partial access at the end: the whole range must be inside (EFAULT).
            guard start + buffer.count <= runtime.configuration.count else { throw .badAddress }
            let count = buffer.count
            unsafe runtime.configuration.withUnsafeBytes { unsafe buffer.baseAddress!.copyMemory(from: $0.baseAddress! + start, byteCount: count) }
            return count
        }
        let count = min(buffer.count, Int(configuration.pciDevices[deviceIndex].barSizes[index]) - start)
        unsafe buffer.baseAddress!.copyMemory(from: UnsafeRawPointer(bitPattern: runtime.barStorage[index])! + start, byteCount: count)
        return count
    }

    /// Config writes reach only what vfio-pci lets through to the mock: the command
    /// register and the MSI/MSI-X control words; the rest is virtualized away.
    mutating func deviceWrite(_ fileID: Int, from buffer: UnsafeRawBufferPointer, offset: Int64) throws(Errno) -> Int {
        let (index, start) = try deviceAccess(fileID, offset: offset, write: true)
        let deviceIndex = vfio.deviceFiles[fileID]!.deviceIndex
        if index == Int(VFIO_PCI_CONFIG_REGION_INDEX) {
            guard start + buffer.count <= vfio.devices[deviceIndex]!.configuration.count else { throw .badAddress }
            let count = buffer.count
            let msi = MockKernel.PCIDevice.msiCapabilityOffset, msix = MockKernel.PCIDevice.msixCapabilityOffset
            let writable: Set<Int> = [0x04, 0x05, msi + 2, msi + 3, msix + 2, msix + 3]
            let decoding = memoryDecodingEnabled(deviceIndex)
            for byte in 0..<count where writable.contains(start + byte) {
                vfio.devices[deviceIndex]!.configuration[start + byte] = unsafe buffer[byte]
            }
            // Memory decoding off revokes the dma-bufs, on again brings them back
            // (vfio_pci_config.c:593-595, 633-634).
            if decoding != memoryDecodingEnabled(deviceIndex) { moveDMABufs(ofDevice: deviceIndex, revoked: decoding) }
            return count
        }
        let count = min(buffer.count, Int(configuration.pciDevices[deviceIndex].barSizes[index]) - start)
        let storage = unsafe UnsafeMutableRawPointer(bitPattern: vfio.devices[deviceIndex]!.barStorage[index])!
        unsafe (storage + start).copyMemory(from: buffer.baseAddress!, byteCount: count)
        return count
    }

    /// `vfio_pci_core_mmap`: a shared mapping of a BAR (or part of one) with MMAP set.
    mutating func mapDeviceRegion(_ fileID: Int, length: Int, flags: Int32, offset: Int64, writable: Bool) throws(Errno) -> UInt {
        guard let file = vfio.deviceFiles[fileID] else { throw .badFileDescriptor }
        if file.group == nil && file.boundDeviceID == nil { throw .invalidArgument }
        guard flags & MAP_SHARED != 0 else { throw .invalidArgument }
        let index = Int(UInt64(offset) >> vfioRegionShift)
        let start = UInt64(offset) & ((1 << vfioRegionShift) - 1)
        guard index < 6 else { throw .invalidArgument }
        let size = configuration.pciDevices[file.deviceIndex].barSizes[index]
        guard size >= pageSize, start % pageSize == 0, start + UInt64(length) <= (size + pageSize - 1) & ~(pageSize - 1) else { throw .invalidArgument }
        let base = UInt64(vfio.devices[file.deviceIndex]!.barStorage[index]) + start
        let rounded = (UInt64(length) + pageSize - 1) & ~(pageSize - 1)
        insertArea(VirtualMemoryArea(start: base, length: rounded, writable: writable, backing: .deviceMemory(fileID: fileID)))
        return UInt(base)
    }
}

/// Bits of the PCI command register.
enum PCICommand {
    static let memory: UInt16 = 1 << 1
    static let busMaster: UInt16 = 1 << 2
}
