import IOMMUFDSystem
import CIOMMUFD
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

// The VFIO cdev and iommufd (drivers/vfio/device_cdev.c): bind, attach or replace, detach.

extension KernelState {
    // MARK: cdev + iommufd

    /// `vfio_df_ioctl_bind_iommufd`.
    mutating func bind(_ file: inout DeviceFile, _ argument: UnsafeMutableRawPointer) throws(Errno) {
        var command = unsafe argument.loadUnaligned(as: vfio_device_bind_iommufd.self)
        guard command.argsz >= 16, command.flags & ~VFIO_DEVICE_BIND_FLAG_TOKEN == 0 else { throw .invalidArgument }
        guard file.group == nil, file.boundDeviceID == nil else { throw .invalidArgument }
        let device = configuration.pciDevices[file.deviceIndex]
        if let group = device.iommuGroup, vfio.groups[group] != nil { throw .resourceBusy }
        // Only the group path may open a device more than once.
        if (vfio.devices[file.deviceIndex]?.boundCdevs ?? 0) > 0 { throw .invalidArgument }
        // vfio_df_check_token: a VF token for a function that is neither a PF nor a VF.
        if command.flags & VFIO_DEVICE_BIND_FLAG_TOKEN != 0 { throw .invalidArgument }
        // iommufd_ctx_from_fd: EBADF for no file, EBADFD for a file that is not an iommufd.
        guard let target = descriptors[command.iommufd] else { throw .badFileDescriptor }
        guard case .iommufd(let contextID) = target, contexts[contextID] != nil else { throw Errno(rawValue: EBADFD) }
        // A no-IOMMU device binds without the IOMMU checks (iommufd_bind_noiommu, device.c:278-292).
        let iommu: DeviceIOMMU = device.withoutIOMMU ? .none : .intel(addressWidth: device.addressWidth, tracksDirty: device.iommuTracksDirty)
        let deviceID = contexts[contextID]!.insert(.device(MockBoundDevice(iommu: iommu, pasidWidth: device.pasidWidth,
                                                                           supportsPageRequests: device.supportsPageRequests)))
        file.boundContext = contextID
        file.boundDeviceID = deviceID
        vfio.devices[file.deviceIndex]!.boundCdevs += 1
        command.out_devid = deviceID
        unsafe argument.storeBytes(of: command, as: vfio_device_bind_iommufd.self)
    }

    /// `vfio_df_ioctl_attach_pt`: attach, or replace when already attached.
    mutating func attach(_ file: DeviceFile, _ argument: UnsafeMutableRawPointer) throws(Errno) {
        var command = unsafe argument.loadUnaligned(as: vfio_device_attach_iommufd_pt.self)
        guard command.argsz >= 12, command.flags & ~VFIO_DEVICE_ATTACH_PASID == 0 else { throw .invalidArgument }
        guard let contextID = file.boundContext, let deviceID = file.boundDeviceID else { throw .invalidArgument }
        // vfio_df_ioctl_attach_pt (device_cdev.c:203-260): with the PASID flag, argsz must reach the pasid.
        if command.flags & VFIO_DEVICE_ATTACH_PASID != 0 {
            guard command.argsz >= 16 else { throw .invalidArgument }
            if command.pasid != 0 { return try attachPASID(command.pasid, to: command.pt_id, contextID, deviceID) }
            // PASID 0 is the RID (vfio/iommufd.c:203-207).
        }
        let device = configuration.pciDevices[file.deviceIndex]
        guard case .device(let bound)? = contexts[contextID]!.objects[deviceID] else { throw .noSuchFileOrDirectory }
        // While PASIDs are attached the RID may only move to a PASID-compatible HWPT (an
        // automatic one never is): EINVAL (device.c).
        if !bound.pasids.isEmpty && !contexts[contextID]!.isPASIDCompatible(command.pt_id) { throw .invalidArgument }
        // Attaching again to the page table it is on changes nothing. An IOAS means its
        // automatic HWPTs only (iommufd_device_auto_get_domain skips HWPTs the user
        // allocated, device.c): from a user HWPT of the same IOAS the device moves to one.
        if let previous = bound.attachedHWPT,
           case .hwptPaging(let hwpt)? = contexts[contextID]!.objects[previous],
           previous == command.pt_id || (hwpt.autoDomain && hwpt.ioasID == command.pt_id) {
            command.pt_id = previous
            unsafe argument.storeBytes(of: command, as: vfio_device_attach_iommufd_pt.self)
            return
        }
        // A second attach is a replace (iommufd_device_replace): the new page table is found
        // or made while the old one is still attached, so a new automatic HWPT never takes
        // the old one's id; the old one is let go after.
        //
        // The device's reserved regions belong to the device, not to the page table: they
        // enter the target's IOAS before the domain is attached or made (EADDRINUSE over a
        // mapping comes first: iommufd_hw_pagetable_attach, device.c:719-723; the automatic
        // domain's pages are filled after it, hw_pagetable.c), and they leave the IOAS when
        // the device detaches or moves to another IOAS, whoever else shares the page table
        // (device.c:787, 900-906). A replace within one IOAS keeps them.
        let previousIOAS = bound.attachedHWPT.flatMap { contexts[contextID]!.ioasID(ofHWPT: $0) }
        let targetIOAS: UInt32? = if case .ioas? = contexts[contextID]!.objects[command.pt_id] {
            command.pt_id
        } else {
            contexts[contextID]!.ioasID(ofHWPT: command.pt_id)
        }
        if let targetIOAS, targetIOAS != previousIOAS {
            try reserveRegions(of: device, deviceID: deviceID, contextID, in: targetIOAS)
        }
        let hwptID = try attachDevice(contextID, deviceID, to: command.pt_id, iommu: bound.iommu)
        if let previous = bound.attachedHWPT {
            if previous != hwptID { answerPendingFaults(contextID, hwptID: previous, deviceID: deviceID, pasid: 0) }
            releaseAttachment(contextID, hwptID: previous)
            if let previousIOAS, previousIOAS != targetIOAS { removeRegions(ofDevice: deviceID, contextID, in: previousIOAS) }
        }
        command.pt_id = hwptID
        unsafe argument.storeBytes(of: command, as: vfio_device_attach_iommufd_pt.self)
    }

    /// `iopt_table_enforce_dev_resv_regions`: each region reserved with the device as owner;
    /// over a mapping it is EADDRINUSE (the call's transaction drops what it reserved).
    mutating func reserveRegions(of device: MockKernel.PCIDevice, deviceID: UInt32, _ contextID: Int, in ioasID: UInt32) throws(Errno) {
        // A no-IOMMU device reserves nothing (attach_resv is false, device.c:681-682).
        guard !device.withoutIOMMU, var table = contexts[contextID]!.ioas(ioasID) else { return }
        for region in device.reservedRegions {
            if let error = table.reserve(region, owner: .device(deviceID: deviceID)) { throw error }
        }
        contexts[contextID]!.objects[ioasID] = .ioas(table)
    }

    mutating func detach(_ file: DeviceFile, _ argument: UnsafeMutableRawPointer) throws(Errno) {
        let command = unsafe argument.loadUnaligned(as: vfio_device_detach_iommufd_pt.self)
        guard command.argsz >= 8, command.flags & ~VFIO_DEVICE_DETACH_PASID == 0 else { throw .invalidArgument }
        guard let contextID = file.boundContext, let deviceID = file.boundDeviceID else { throw .invalidArgument }
        if command.flags & VFIO_DEVICE_DETACH_PASID != 0 {
            // vfio_df_ioctl_detach_pt (device_cdev.c:262-302) answers 0 whatever happened; an
            // unattached PASID is skipped (vfio/iommufd.c:215-229).
            guard command.argsz >= 12 else { throw .invalidArgument }
            detachDevicePASID(contextID, deviceID, pasid: command.pasid)
            return
        }
        detachDevice(contextID, deviceID)
    }

    /// `vfio_iommufd_physical_pasid_attach_ioas` (vfio/iommufd.c:189-213): an attached PASID
    /// is replaced; a new one past INT_MAX is ENOSPC (the PASID ida); then the core's rules.
    /// QEMU 7.2's functions have no PASID capability, so `max_pasids` is 0 and the IOMMU
    /// layer skips the device: the attach succeeds and does nothing, which is what the kernel
    /// does (iommu.c), though no DMA is ever tagged with it.
    mutating func attachPASID(_ pasid: UInt32, to ptID: UInt32, _ contextID: Int, _ deviceID: UInt32) throws(Errno) {
        guard case .device(let bound)? = contexts[contextID]!.objects[deviceID] else { throw .noSuchFileOrDirectory }
        if bound.pasids[pasid] != nil { return try replaceDevicePASID(contextID, deviceID, pasid: pasid, with: ptID) }
        guard pasid <= UInt32(Int32.max) else { throw .noSpace }
        try attachDevicePASID(contextID, deviceID, pasid: pasid, to: ptID)
    }
}
