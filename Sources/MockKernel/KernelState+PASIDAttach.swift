import CIOMMUFD
import SystemPackage

// The iommufd core's PASID attach, replace and detach (drivers/iommu/iommufd/device.c) and
// the IOMMU layer under them (drivers/iommu/iommu.c), shared by VFIO's ATTACH_PASID and the
// selftest's IOMMU_TEST_OP_PASID_* operations. PASID 0 is the RID and never comes here.
extension KernelState {
    /// `iommufd_device_attach(idev, pasid, &pt_id)` for a PASID above 0, in the kernel's
    /// order: the page table (`ENOENT`; an IOAS is `EINVAL`, its automatic domains are never
    /// PASID-compatible, or `EBUSY` when the PASID is attached already; any other object
    /// `EINVAL`, device.c:1017-1063, 978), the PASID already attached (`EBUSY`, the
    /// device_array insert, device.c:708-712), the target and the RID's HWPT PASID-compatible
    /// (`EINVAL`, device.c:515-541), then `iommu_attach_device_pasid`: another driver's
    /// domain (`EINVAL`, iommu.c:3645-3646), the device's `max_pasids` (`EINVAL` past it, a
    /// device with 0 is skipped, iommu.c:3660-3670) and the driver's `set_dev_pasid` (the
    /// selftest driver's rigged PASID 1024). The PASID holds its HWPT (device.c:741).
    mutating func attachDevicePASID(_ contextID: Int, _ deviceID: UInt32, pasid: UInt32, to ptID: UInt32) throws(Errno) {
        guard case .device(var bound)? = contexts[contextID]!.objects[deviceID] else { throw .noSuchFileOrDirectory }
        let attached = bound.pasids[pasid] != nil
        switch contexts[contextID]!.objects[ptID] {
        case nil: throw .noSuchFileOrDirectory
        case .ioas?: throw attached ? .resourceBusy : .invalidArgument
        case .hwptPaging?, .hwptNested?: break
        default: throw .invalidArgument
        }
        if attached { throw .resourceBusy }
        guard contexts[contextID]!.isPASIDCompatible(ptID) else { throw .invalidArgument }
        if let rid = bound.attachedHWPT, !contexts[contextID]!.isPASIDCompatible(rid) { throw .invalidArgument }
        guard try setDevicePASID(&bound, pasid: pasid, to: ptID, contextID) else { return failInDriver(contextID, deviceID, bound) }
        contexts[contextID]!.adjustAttachments(ofHWPT: ptID, by: 1)
        bound.pasids[pasid] = ptID
        contexts[contextID]!.objects[deviceID] = .device(bound)
    }

    /// `iommufd_device_replace(idev, pasid, &pt_id)` for a PASID above 0: the page table
    /// (`ENOENT`), the PASID attached (`EINVAL`, device.c:872-876), an IOAS or any other
    /// object that is not a HWPT (`EINVAL`), the same HWPT (nothing to do, device.c:887-890),
    /// the target PASID-compatible (`EINVAL`), then `iommu_replace_device_pasid` and the
    /// driver; when the driver fails, the PASID stays on its old HWPT (iommu.c:3785-3789).
    mutating func replaceDevicePASID(_ contextID: Int, _ deviceID: UInt32, pasid: UInt32, with ptID: UInt32) throws(Errno) {
        guard case .device(var bound)? = contexts[contextID]!.objects[deviceID] else { throw .noSuchFileOrDirectory }
        guard let target = contexts[contextID]!.objects[ptID] else { throw .noSuchFileOrDirectory }
        guard let current = bound.pasids[pasid] else { throw .invalidArgument }
        switch target {
        case .hwptPaging, .hwptNested: break
        default: throw .invalidArgument
        }
        if current == ptID { return }
        guard contexts[contextID]!.isPASIDCompatible(ptID) else { throw .invalidArgument }
        guard try setDevicePASID(&bound, pasid: pasid, to: ptID, contextID) else { return failInDriver(contextID, deviceID, bound) }
        answerPendingFaults(contextID, hwptID: current, deviceID: deviceID, pasid: pasid)
        contexts[contextID]!.adjustAttachments(ofHWPT: current, by: -1)
        contexts[contextID]!.adjustAttachments(ofHWPT: ptID, by: 1)
        bound.pasids[pasid] = ptID
        contexts[contextID]!.objects[deviceID] = .device(bound)
    }

    /// `iommufd_device_detach(idev, pasid)`: an unattached PASID is skipped
    /// (device.c:770-774); the driver sees the blocked domain, which disarms the selftest
    /// driver's PASID 1024 (selftest.c:265-266).
    mutating func detachDevicePASID(_ contextID: Int, _ deviceID: UInt32, pasid: UInt32) {
        guard case .device(var bound)? = contexts[contextID]!.objects[deviceID],
              let hwptID = bound.pasids.removeValue(forKey: pasid) else { return }
        if pasid == IOMMU_TEST_PASID_RESERVED { bound.pasid1024FailsNext = false }
        contexts[contextID]!.objects[deviceID] = .device(bound)
        answerPendingFaults(contextID, hwptID: hwptID, deviceID: deviceID, pasid: pasid)
        contexts[contextID]!.adjustAttachments(ofHWPT: hwptID, by: -1)
    }

    /// Detaches every PASID of a device (before it is unbound or destroyed).
    mutating func detachAllPASIDs(_ contextID: Int, _ deviceID: UInt32) {
        guard case .device(let bound)? = contexts[contextID]!.objects[deviceID] else { return }
        for pasid in bound.pasids.keys.sorted() { detachDevicePASID(contextID, deviceID, pasid: pasid) }
    }

    /// The driver refused: what it changed stays (the rig disarmed), the PASID does not move,
    /// and the call fails with `ENOMEM`.
    private mutating func failInDriver(_ contextID: Int, _ deviceID: UInt32, _ bound: MockBoundDevice) {
        contexts[contextID]!.objects[deviceID] = .device(bound)
        errorAfterCommit = .noMemory
    }

    /// The IOMMU layer's part of a PASID attach or replace (`iommu_attach_device_pasid`,
    /// `iommu_replace_device_pasid`): the domain must be the device's driver's (`EINVAL`),
    /// and for a device with `max_pasids` above 0 the PASID must be below it (`EINVAL`) and
    /// the driver's `set_dev_pasid` runs. The selftest driver's runs the rig of
    /// `IOMMU_TEST_PASID_RESERVED` (`mock_domain_set_dev_pasid_nop`, selftest.c:252-289): the
    /// first call arms it, the next fails with `ENOMEM` and disarms it. Returns `false` when
    /// the driver fails.
    private mutating func setDevicePASID(_ bound: inout MockBoundDevice, pasid: UInt32, to ptID: UInt32, _ contextID: Int) throws(Errno) -> Bool {
        let driver: DeviceIOMMU.Driver? = switch contexts[contextID]!.objects[ptID] {
        case .hwptPaging(let hwpt)?: hwpt.driver
        case .hwptNested(let nested)?: nested.driver
        default: nil
        }
        guard driver == bound.iommu.driver else { throw .invalidArgument }
        let maxPASIDs = bound.maxPASIDs
        guard maxPASIDs > 0 else { return true }
        guard UInt64(pasid) < maxPASIDs else { throw .invalidArgument }
        guard bound.iommu == .selftest, pasid == IOMMU_TEST_PASID_RESERVED else { return true }
        bound.pasid1024FailsNext.toggle()
        return bound.pasid1024FailsNext
    }
}
