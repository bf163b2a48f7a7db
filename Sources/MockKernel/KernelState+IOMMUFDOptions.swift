import IOMMUFDSystem
import CIOMMUFD
import SystemPackage

// IOMMU_OPTION, IOMMU_VFIO_IOAS, IOMMU_IOAS_CHANGE_PROCESS, and the commands the model does not have.
extension KernelState {
    // MARK: Options

    mutating func option(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        var cmd = unsafe command.load(iommu_option.self)
        guard cmd.__reserved == 0 else { throw .notSupported }
        switch cmd.option_id {
        case IOMMU_OPTION_RLIMIT_MODE:
            guard cmd.object_id == 0 else { throw .notSupported }
            if cmd.op == IOMMU_OPTION_OP_GET {
                cmd.val64 = contexts[contextID]!.accountingMode
            } else if cmd.op == IOMMU_OPTION_OP_SET {
                guard configuration.hasSysResource else { throw .notPermitted }
                guard contexts[contextID]!.objects.isEmpty else { throw .resourceBusy }
                guard cmd.val64 <= 1 else { throw .invalidArgument }
                contexts[contextID]!.accountingMode = cmd.val64
            } else {
                throw .notSupported
            }
        case IOMMU_OPTION_HUGE_PAGES:
            guard var table = contexts[contextID]!.ioas(cmd.object_id) else { throw .noSuchFileOrDirectory }
            if cmd.op == IOMMU_OPTION_OP_GET {
                cmd.val64 = table.disableLargePages ? 0 : 1
            } else if cmd.op == IOMMU_OPTION_OP_SET {
                switch cmd.val64 {
                case 0 where !table.disableLargePages:
                    // iopt_disable_large_pages
                    if !table.domains.isEmpty && !table.areas(overlapping: 0...ulongMax).isEmpty { throw .invalidArgument }
                    let before = table.iovaAlignment
                    table.disableLargePages = true
                    if table.iovaAlignment > before && !table.areasConform(to: table.iovaAlignment) { throw .addressInUse }
                case 0:
                    break
                case 1:
                    table.disableLargePages = false
                default:
                    throw .invalidArgument
                }
                contexts[contextID]!.objects[cmd.object_id] = .ioas(table)
            } else {
                throw .notSupported
            }
        default:
            throw .notSupported
        }
        // iommufd_option writes back val64 only.
        var answer = unsafe command.user.loadUnaligned(as: iommu_option.self)
        answer.val64 = cmd.val64
        unsafe command.user.storeBytes(of: answer.val64, toByteOffset: 16, as: UInt64.self)
    }

    mutating func vfioIOAS(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        var cmd = unsafe command.load(iommu_vfio_ioas.self)
        guard cmd.__reserved == 0 else { throw .notSupported }
        switch cmd.op {
        case IOMMU_VFIO_IOAS_GET:
            guard let id = contexts[contextID]!.vfioIOAS else { throw .noSuchFileOrDirectory }
            cmd.ioas_id = id
            unsafe command.respond(cmd)
        case IOMMU_VFIO_IOAS_SET:
            guard contexts[contextID]!.ioas(cmd.ioas_id) != nil else { throw .noSuchFileOrDirectory }
            contexts[contextID]!.vfioIOAS = cmd.ioas_id
        case IOMMU_VFIO_IOAS_CLEAR:
            contexts[contextID]!.vfioIOAS = nil
        default:
            throw .notSupported
        }
    }

    mutating func ioasChangeProcess(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        let cmd = unsafe command.load(iommu_ioas_change_process.self)
        guard cmd.__reserved == 0 else { throw .notSupported }
        // Only file-backed mappings can move to another process.
        for pages in contexts[contextID]!.pages.values {
            if case .user = pages.source { throw .invalidArgument }
        }
    }

    /// Commands that need real devices or vIOMMUs, which the model does not have yet:
    /// their generic argument checks, then the answer of a kernel without such a device.
    mutating func unmodelledCommand(_ contextID: Int, _ operation: IOMMUOperation, _ command: UserCommand) throws(Errno) {
        switch operation {
        case .hwptAlloc:
            let cmd = unsafe command.load(iommu_hwpt_alloc.self)
            guard cmd.__reserved == 0 else { throw .notSupported }
            guard case .device? = contexts[contextID]!.objects[cmd.dev_id] else { throw .noSuchFileOrDirectory }
            throw .notSupported
        case .getHWInfo:
            var cmd = unsafe command.load(iommu_hw_info.self)
            guard case .device? = contexts[contextID]!.objects[cmd.dev_id] else { throw .noSuchFileOrDirectory }
            // A VFIO-bound PCI function sits behind the modelled intel-iommu (QEMU's registers).
            guard vfio.deviceFiles.values.contains(where: { $0.boundContext == contextID && $0.boundDeviceID == cmd.dev_id }) else {
                throw .notSupported
            }
            guard cmd.flags == 0, cmd.__reserved == (0, 0, 0) else { throw .notSupported }
            var vtd = iommu_hw_info_vtd()
            vtd.cap_reg = 0xd2_008c_2226_0206
            vtd.ecap_reg = 0xf0_0f4a
            let kernelLength = MemoryLayout<iommu_hw_info_vtd>.size
            if cmd.data_len > 0 {
                // The buffer is usually on the caller's stack, outside the modelled mmaps: only NULL faults.
                guard let destination = unsafe UnsafeMutableRawPointer(bitPattern: UInt(cmd.data_uptr)) else { throw .badAddress }
                let copied = min(Int(cmd.data_len), kernelLength)
                unsafe withUnsafeBytes(of: &vtd) { unsafe destination.copyMemory(from: $0.baseAddress!, byteCount: copied) }
                if Int(cmd.data_len) > kernelLength {
                    unsafe (destination + kernelLength).initializeMemory(as: UInt8.self, repeating: 0, count: Int(cmd.data_len) - kernelLength)
                }
            }
            cmd.data_len = UInt32(kernelLength)
            cmd.out_data_type = IOMMU_HW_INFO_TYPE_INTEL_VTD
            cmd.out_max_pasid_log2 = 0
            cmd.out_capabilities = 0
            unsafe command.respond(cmd)
        case .ioasNoIOMMUGetPA:
            throw .notPermitted
        default:
            throw .noSuchFileOrDirectory
        }
    }
}
