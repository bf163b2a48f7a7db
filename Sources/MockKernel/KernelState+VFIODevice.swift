import IOMMUFDSystem
import CIOMMUFD
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// vfio-pci places region `i` at `i << 40` in the device descriptor (`VFIO_PCI_OFFSET_SHIFT`).
let vfioRegionShift: UInt64 = 40

// The VFIO device descriptor as vfio-pci answers it: drivers/vfio/vfio_main.c (cdev
// bind/attach), drivers/vfio/pci/vfio_pci_core.c (info, regions, interrupts, reset).

extension KernelState {
    // MARK: ioctl

    mutating func vfioDeviceIoctl(_ fileID: Int, request: UInt, argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
        guard var file = vfio.deviceFiles[fileID] else { throw .badFileDescriptor }
        // A cdev does nothing but bind until it is bound: every other request, known or not,
        // is EINVAL (`access_granted`, vfio_main.c:1377-1382).
        if file.group == nil && file.boundDeviceID == nil && request != VFIO_DEVICE_BIND_IOMMUFD { throw .invalidArgument }
        guard let operation = IOMMUOperation(request: request, family: .vfioDevice) else { throw .inappropriateIOCTLForDevice }
        guard let argument = unsafe argument else { throw operation == .vfioDeviceReset ? .inappropriateIOCTLForDevice : .badAddress }
        let device = configuration.pciDevices[file.deviceIndex]
        switch operation {
        case .vfioDeviceGetInfo: unsafe try deviceInfo(device, argument)
        case .vfioDeviceGetRegionInfo: unsafe try regionInfo(device, argument)
        case .vfioDeviceGetIRQInfo: unsafe try interruptInfo(device, argument)
        case .vfioDeviceSetIRQs: unsafe try setInterrupts(file.deviceIndex, argument)
        case .vfioDeviceGetPCIHotResetInfo: unsafe try hotResetInfo(file, argument)
        case .vfioDeviceBindIOMMUFD:
            unsafe try bind(&file, argument)
            vfio.deviceFiles[fileID] = file
        case .vfioDeviceAttachIOMMUFDPT: unsafe try attach(file, argument)
        case .vfioDeviceDetachIOMMUFDPT: unsafe try detach(file, argument)
        case .vfioDevicePCIHotReset: unsafe try hotReset(file, argument)
        case .vfioDeviceFeature:
            return unsafe try deviceFeature(file, argument)
        case .vfioDeviceIOEventFD:
            // Implemented by the kernel (vfio_pci_ioctl_ioeventfd), not by the model: refused loudly.
            unmodelledCalls.append(operation)
            throw .noFunction
        default:
            // vfio-pci has no graphics planes and no other device command (vfio_pci_core_ioctl's default).
            throw .inappropriateIOCTLForDevice
        }
        return 0
    }

    /// `VFIO_DEVICE_RESET` takes no argument.
    mutating func resetDevice(_ fileID: Int) throws(Errno) {
        guard let file = vfio.deviceFiles[fileID] else { throw .badFileDescriptor }
        if file.group == nil && file.boundDeviceID == nil { throw .invalidArgument }
        guard configuration.pciDevices[file.deviceIndex].resetMethod != nil else { throw .invalidArgument }
        let device = configuration.pciDevices[file.deviceIndex]
        // vfio_pci_ioctl_reset (vfio_pci_core.c:1336-1345): the function's dma-bufs are
        // revoked (their iommufd mappings die for good), then live again when memory
        // decoding is on. pci_try_reset_function saves and restores the function's state:
        // the command register reads as before (scenario M14); the device's memory is reset.
        let decoding = memoryDecodingEnabled(file.deviceIndex)
        moveDMABufs(ofDevice: file.deviceIndex, revoked: true)
        if decoding { moveDMABufs(ofDevice: file.deviceIndex, revoked: false) }
        let runtime = vfio.devices[file.deviceIndex]!
        for (index, base) in runtime.barStorage.enumerated() where base != 0 {
            unsafe UnsafeMutableRawPointer(bitPattern: base)!.initializeMemory(as: UInt8.self, repeating: 0, count: Int(device.barSizes[index]))
        }
        vfio.devices[file.deviceIndex] = runtime
    }

    private func deviceInfo(_ device: MockKernel.PCIDevice, _ argument: UnsafeMutableRawPointer) throws(Errno) {
        var info = unsafe argument.loadUnaligned(as: vfio_device_info.self)
        guard info.argsz >= 16 else { throw .invalidArgument }
        info.flags = VFIO_DEVICE_FLAGS_PCI | (device.resetMethod != nil ? VFIO_DEVICE_FLAGS_RESET : 0)
        info.num_regions = VFIO_PCI_NUM_REGIONS
        info.num_irqs = VFIO_PCI_NUM_IRQS
        unsafe withUnsafeBytes(of: &info) { unsafe argument.copyMemory(from: $0.baseAddress!, byteCount: 16) }
    }

    private func regionInfo(_ device: MockKernel.PCIDevice, _ argument: UnsafeMutableRawPointer) throws(Errno) {
        var info = unsafe argument.loadUnaligned(as: vfio_region_info.self)
        let fixed = MemoryLayout<vfio_region_info>.size
        guard info.argsz >= UInt32(fixed) else { throw .invalidArgument }
        guard info.index < VFIO_PCI_NUM_REGIONS, info.index != VFIO_PCI_VGA_REGION_INDEX else { throw .invalidArgument }
        info.offset = UInt64(info.index) << vfioRegionShift
        info.flags = 0
        info.size = 0
        info.cap_offset = 0
        var capability: [UInt8] = []
        switch info.index {
        case VFIO_PCI_CONFIG_REGION_INDEX:
            // vfio_pci_core.c:1140-1145: the function's cfg_size.
            info.size = UInt64(device.configurationSize)
            info.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE
        case VFIO_PCI_ROM_REGION_INDEX:
            // vfio_pci_core.c:1166-1189: a ROM that maps reports its BAR's size, read-only.
            guard device.romSize > 0 else { break }
            info.size = device.romSize
            info.flags = VFIO_REGION_INFO_FLAG_READ
        default:
            let size = device.barSizes[Int(info.index)]
            guard size > 0 else { break }
            info.size = size
            info.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE
            // Only memory BARs of at least a page are mappable (bar_mmap_supported).
            if size >= pageSize && !device.ioBARs.contains(Int(info.index)) { info.flags |= VFIO_REGION_INFO_FLAG_MMAP }
            if device.msixVectors > 0 && Int(info.index) == device.msixBAR {
                // msix_mmappable_cap: a bare header.
                var header = vfio_info_cap_header()
                header.id = VFIO_REGION_INFO_CAP_MSIX_MAPPABLE
                header.version = 1
                capability = unsafe withUnsafeBytes(of: &header) { unsafe Array($0) }
            }
        }
        if !capability.isEmpty {
            info.flags |= VFIO_REGION_INFO_FLAG_CAPS
            let needed = UInt32(fixed + capability.count)
            if info.argsz < needed {
                info.argsz = needed
            } else {
                info.cap_offset = UInt32(fixed)
                unsafe capability.withUnsafeBytes { unsafe (argument + fixed).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            }
        }
        unsafe withUnsafeBytes(of: &info) { unsafe argument.copyMemory(from: $0.baseAddress!, byteCount: fixed) }
    }

    /// How many vectors an interrupt kind has on the device (`vfio_pci_get_irq_count`).
    func interruptCount(_ device: MockKernel.PCIDevice, _ index: UInt32) -> UInt32 {
        switch index {
        case VFIO_PCI_INTX_IRQ_INDEX: device.hasINTx ? 1 : 0
        case VFIO_PCI_MSI_IRQ_INDEX: device.msiVectors
        case VFIO_PCI_MSIX_IRQ_INDEX: device.msixVectors
        case VFIO_PCI_ERR_IRQ_INDEX, VFIO_PCI_REQ_IRQ_INDEX: 1  // vfio_pci_get_irq_count (vfio_pci_core.c:858-889)
        default: 0
        }
    }

    private func interruptInfo(_ device: MockKernel.PCIDevice, _ argument: UnsafeMutableRawPointer) throws(Errno) {
        var info = unsafe argument.loadUnaligned(as: vfio_irq_info.self)
        // vfio_pci_ioctl_get_irq_info (vfio_pci_core.c:1245-1277): every index 0-4, the error
        // index included whatever the function; MSI-X resizable where the MSI domain can
        // allocate vectors dynamically (has_dyn_msix: x86 with interrupt remapping, as here).
        guard info.argsz >= 16, info.index < VFIO_PCI_NUM_IRQS else { throw .invalidArgument }
        info.flags = VFIO_IRQ_INFO_EVENTFD
        if info.index == VFIO_PCI_INTX_IRQ_INDEX {
            info.flags |= VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED
        } else if info.index != VFIO_PCI_MSIX_IRQ_INDEX || device.msixVectors == 0 {
            // has_dyn_msix is set only for a function with an MSI-X capability (vfio_pci_core.c:650-660).
            info.flags |= VFIO_IRQ_INFO_NORESIZE
        }
        info.count = interruptCount(device, info.index)
        unsafe argument.storeBytes(of: info, as: vfio_irq_info.self)
    }

    /// `vfio_set_irqs_validate_and_prepare`, then `vfio_pci_set_irqs_ioctl`.
    private mutating func setInterrupts(_ deviceIndex: Int, _ argument: UnsafeMutableRawPointer) throws(Errno) {
        let header = unsafe argument.loadUnaligned(as: vfio_irq_set.self)
        let minimum = MemoryLayout<vfio_irq_set>.size
        let dataTypes = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_DATA_EVENTFD
        let actions = VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_ACTION_TRIGGER
        guard header.argsz >= UInt32(minimum), header.index < VFIO_PCI_NUM_IRQS,
              header.count < UInt32.max - header.start, header.flags & ~(dataTypes | actions) == 0,
              (header.flags & dataTypes).nonzeroBitCount == 1, (header.flags & actions).nonzeroBitCount == 1
        else { throw .invalidArgument }
        let device = configuration.pciDevices[deviceIndex]
        let maximum = interruptCount(device, header.index)
        guard header.start < maximum, header.start + header.count <= maximum else { throw .invalidArgument }
        let elementSize = header.flags & VFIO_IRQ_SET_DATA_EVENTFD != 0 ? 4 : header.flags & VFIO_IRQ_SET_DATA_BOOL != 0 ? 1 : 0
        guard Int(header.argsz) - minimum >= Int(header.count) * elementSize else { throw .invalidArgument }
        var runtime = vfio.devices[deviceIndex]!
        guard header.flags & VFIO_IRQ_SET_ACTION_TRIGGER != 0 else {
            // Mask/unmask: only INTx has it here, and there is nothing to model beyond accepting it.
            guard header.index == VFIO_PCI_INTX_IRQ_INDEX else { throw .invalidArgument }
            return
        }
        if header.index == VFIO_PCI_ERR_IRQ_INDEX || header.index == VFIO_PCI_REQ_IRQ_INDEX {
            // vfio_pci_set_ctx_trigger_single (vfio_pci_intrs.c): one eventfd of its own, set or
            // cleared (-1, or DATA_NONE with count 0); a loopback trigger signals it if set.
            switch header.flags & dataTypes {
            case VFIO_IRQ_SET_DATA_EVENTFD:
                let fd = unsafe argument.loadUnaligned(fromByteOffset: minimum, as: Int32.self)
                if fd >= 0 {
                    guard let descriptor = descriptors[fd] else { throw .badFileDescriptor }
                    guard case .eventCounter = descriptor else { throw .invalidArgument }
                    runtime.sideTriggers[header.index] = fd
                } else {
                    runtime.sideTriggers[header.index] = nil
                }
            case VFIO_IRQ_SET_DATA_NONE where header.count == 0:
                runtime.sideTriggers[header.index] = nil
            default:
                let fire = unsafe header.flags & VFIO_IRQ_SET_DATA_BOOL == 0 || argument.load(fromByteOffset: minimum, as: UInt8.self) != 0
                if fire, let fd = runtime.sideTriggers[header.index] { signal(fd) }
            }
            vfio.devices[deviceIndex] = runtime
            return
        }
        switch header.flags & dataTypes {
        case VFIO_IRQ_SET_DATA_EVENTFD:
            // Only one kind at a time (vfio_msi_enable / vfio_intx_enable need irq_type NONE).
            if let kind = runtime.interruptKind, kind != header.index { throw .invalidArgument }
            var triggers = runtime.interruptKind == header.index ? runtime.triggers : []
            if triggers.count < Int(maximum) { triggers += Array(repeating: -1, count: Int(maximum) - triggers.count) }
            for offset in 0..<Int(header.count) {
                let fd = unsafe argument.loadUnaligned(fromByteOffset: minimum + offset * 4, as: Int32.self)
                if fd >= 0 {
                    guard let descriptor = descriptors[fd] else { throw .badFileDescriptor }
                    guard case .eventCounter = descriptor else { throw .invalidArgument }
                }
                triggers[Int(header.start) + offset] = fd
            }
            runtime.interruptKind = header.index
            runtime.triggers = triggers
        case VFIO_IRQ_SET_DATA_NONE where header.count == 0:
            if runtime.interruptKind == header.index {
                runtime.interruptKind = nil
                runtime.triggers = []
            }
        default:
            // DATA_NONE/BOOL with a count: a loopback trigger of the wired vectors.
            guard runtime.interruptKind == header.index else { throw .invalidArgument }
            for vector in Int(header.start)..<Int(header.start + header.count) {
                let fire = unsafe header.flags & VFIO_IRQ_SET_DATA_BOOL == 0
                    || argument.load(fromByteOffset: minimum + vector - Int(header.start), as: UInt8.self) != 0
                if fire { signal(runtime.triggers[vector]) }
            }
        }
        vfio.devices[deviceIndex] = runtime
    }

    /// Adds one to an eventfd's counter, as `eventfd_signal` does.
    mutating func signal(_ fd: Int32) {
        guard fd >= 0, case .eventCounter(let value)? = descriptors[fd] else { return }
        descriptors[fd] = .eventCounter(value: value &+ 1)
    }

    /// `VFIO_DEVICE_PCI_HOT_RESET` as far as `vfio_pci_ioctl_pci_hot_reset` checks
    /// (vfio_pci_core.c:1500-1521): argsz and flags (EINVAL); a device opened through its
    /// cdev takes an empty group array, one opened through a group a non-empty one (EINVAL);
    /// a function with neither a slot nor a bus reset is ENODEV. The reset of a bus is not
    /// modelled: refused loudly.
    private mutating func hotReset(_ file: DeviceFile, _ argument: UnsafeMutableRawPointer) throws(Errno) {
        let header = unsafe argument.loadUnaligned(as: vfio_pci_hot_reset.self)
        guard header.argsz >= UInt32(MemoryLayout<vfio_pci_hot_reset>.size), header.flags == 0 else { throw .invalidArgument }
        let openedThroughCdev = file.group == nil
        guard (header.count != 0) != openedThroughCdev else { throw .invalidArgument }
        guard !isOnRootBus(configuration.pciDevices[file.deviceIndex]) else { throw .operationNotSupportedByDevice }
        unmodelledCalls.append(.vfioDevicePCIHotReset)
        throw .noFunction
    }

    /// Functions on the root bus have no slot or bus reset (pci_probe_reset_slot has no
    /// slot, pci_probe_reset_bus refuses a root bus).
    private func isOnRootBus(_ device: MockKernel.PCIDevice) -> Bool {
        device.address.split(separator: ":").dropLast().joined(separator: ":").hasSuffix(":00")
    }

    private func hotResetInfo(_ file: DeviceFile, _ argument: UnsafeMutableRawPointer) throws(Errno) {
        var header = unsafe argument.loadUnaligned(as: vfio_pci_hot_reset_info.self)
        let fixed = MemoryLayout<vfio_pci_hot_reset_info>.size
        guard header.argsz >= UInt32(fixed) else { throw .invalidArgument }
        let device = configuration.pciDevices[file.deviceIndex]
        let bus = device.address.split(separator: ":").dropLast().joined(separator: ":")
        guard !isOnRootBus(device) else { throw .operationNotSupportedByDevice }
        let affected = configuration.pciDevices.indices.filter {
            configuration.pciDevices[$0].address.split(separator: ":").dropLast().joined(separator: ":") == bus
        }
        header.count = UInt32(affected.count)
        header.flags = file.group == nil ? VFIO_PCI_HOT_RESET_FLAG_DEV_ID : 0
        let needed = fixed + affected.count * MemoryLayout<vfio_pci_dependent_device>.size
        guard Int(header.argsz) >= needed else {
            unsafe argument.storeBytes(of: header, as: vfio_pci_hot_reset_info.self)
            throw .noSpace
        }
        unsafe argument.storeBytes(of: header, as: vfio_pci_hot_reset_info.self)
        for (slot, index) in affected.enumerated() {
            let other = configuration.pciDevices[index]
            let address = (try? PCIAddress(parsing: other.address)) ?? PCIAddress(bus: 0, device: 0, function: 0)
            let segment = address.domain
            let busNumber = address.bus
            let devfn = address.device << 3 | address.function
            let id: UInt32
            if file.group == nil {
                let bound = vfio.deviceFiles.values.first { $0.deviceIndex == index && $0.boundContext == file.boundContext && $0.boundDeviceID != nil }
                id = bound?.boundDeviceID ?? VFIO_PCI_DEVID_NOT_OWNED
            } else {
                id = UInt32(other.iommuGroup ?? 0)
            }
            let offset = fixed + slot * MemoryLayout<vfio_pci_dependent_device>.size
            unsafe argument.storeBytes(of: id, toByteOffset: offset, as: UInt32.self)
            unsafe argument.storeBytes(of: segment, toByteOffset: offset + 4, as: UInt16.self)
            unsafe argument.storeBytes(of: busNumber, toByteOffset: offset + 6, as: UInt8.self)
            unsafe argument.storeBytes(of: devfn, toByteOffset: offset + 7, as: UInt8.self)
        }
    }
}
