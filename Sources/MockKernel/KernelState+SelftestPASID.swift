import CIOMMUFD
import SystemPackage

// The selftest's PASID operations (IOMMU_TEST_OP_PASID_ATTACH, _REPLACE, _DETACH and
// _CHECK_HWPT, selftest.c:1829-1941) on a mock device, over the core's PASID rules
// (KernelState+PASIDAttach.swift).
extension KernelState {
    /// One selftest PASID operation; `cmd` gets what the kernel writes back.
    mutating func selftestPASID(_ contextID: Int, _ cmd: inout iommu_test_cmd) throws(Errno) {
        // The selftest object: ENOENT when missing or of another type (main.c:176-178).
        guard case .selftest(let deviceID)? = contexts[contextID]!.objects[cmd.id] else { throw .noSuchFileOrDirectory }
        switch cmd.op {
        case IOMMU_TEST_OP_PASID_ATTACH:
            // iommufd_test_pasid_attach (selftest.c:1875-1902): no check of its own.
            let pasid = cmd.pasid_attach.pasid, ptID = cmd.pasid_attach.pt_id
            if pasid == 0 {
                cmd.pasid_attach.pt_id = try attachSelftestRID(contextID, deviceID, to: ptID)
                return
            }
            try attachDevicePASID(contextID, deviceID, pasid: pasid, to: ptID)
        case IOMMU_TEST_OP_PASID_REPLACE:
            // iommufd_test_pasid_replace (selftest.c:1904-1926) reads the attach layout.
            let pasid = cmd.pasid_attach.pasid, ptID = cmd.pasid_attach.pt_id
            if pasid == 0 {
                cmd.pasid_attach.pt_id = try replaceSelftestRID(contextID, deviceID, with: ptID)
                return
            }
            try replaceDevicePASID(contextID, deviceID, pasid: pasid, with: ptID)
        case IOMMU_TEST_OP_PASID_DETACH:
            // iommufd_test_pasid_detach (selftest.c:1928-1941): always 0.
            if cmd.pasid_detach.pasid == 0 { return detachDevice(contextID, deviceID) }
            detachDevicePASID(contextID, deviceID, pasid: cmd.pasid_detach.pasid)
        default:
            try checkSelftestPASID(contextID, deviceID, pasid: cmd.pasid_check.pasid, hwptID: cmd.pasid_check.hwpt_id)
        }
    }

    /// `iommufd_test_pasid_check_hwpt` (selftest.c:1829-1873): with HWPT 0, `EINVAL` when
    /// anything is attached to the PASID; else the HWPT (`ENOENT`; `EINVAL` for an object
    /// that is not a HWPT, selftest.c:1811-1826) must be the one attached (`EINVAL`).
    /// PASID 0 is the RID.
    private func checkSelftestPASID(_ contextID: Int, _ deviceID: UInt32, pasid: UInt32, hwptID: UInt32) throws(Errno) {
        guard case .device(let bound)? = contexts[contextID]!.objects[deviceID] else { throw .noSuchFileOrDirectory }
        let attached = pasid == 0 ? bound.attachedHWPT : bound.pasids[pasid]
        guard hwptID != 0 else {
            if attached != nil { throw .invalidArgument }
            return
        }
        switch contexts[contextID]!.objects[hwptID] {
        case nil: throw .noSuchFileOrDirectory
        case .hwptPaging?, .hwptNested?: break
        default: throw .invalidArgument
        }
        guard attached == hwptID else { throw .invalidArgument }
    }

    /// PASID 0 through `PASID_ATTACH` is `iommufd_device_attach` of the RID: the page table
    /// (`ENOENT`, `EINVAL` for an object that is no IOAS or HWPT), `EBUSY` while the RID is
    /// attached (device.c:708-712), else an attach with the RID's PASID rule.
    private mutating func attachSelftestRID(_ contextID: Int, _ deviceID: UInt32, to ptID: UInt32) throws(Errno) -> UInt32 {
        guard case .device(let bound)? = contexts[contextID]!.objects[deviceID] else { throw .noSuchFileOrDirectory }
        switch contexts[contextID]!.objects[ptID] {
        case nil: throw .noSuchFileOrDirectory
        case .ioas?, .hwptPaging?, .hwptNested?: break
        default: throw .invalidArgument
        }
        if bound.attachedHWPT != nil { throw .resourceBusy }
        if !bound.pasids.isEmpty && !contexts[contextID]!.isPASIDCompatible(ptID) { throw .invalidArgument }
        return try attachDevice(contextID, deviceID, to: ptID, iommu: bound.iommu)
    }

    /// `iommufd_device_replace` of a mock device's RID (`MOCK_DOMAIN_REPLACE`, and PASID 0
    /// through `PASID_REPLACE`): the page table (`ENOENT`), the RID attached (`EINVAL`,
    /// device.c:872-876), the same page table changes nothing, and while PASIDs are attached
    /// only a PASID-compatible HWPT (`EINVAL`, device.c:523-529). The new page table is
    /// attached before the old one is let go: a replace never blocks DMA. Returns the HWPT.
    mutating func replaceSelftestRID(_ contextID: Int, _ deviceID: UInt32, with ptID: UInt32) throws(Errno) -> UInt32 {
        guard case .device(let bound)? = contexts[contextID]!.objects[deviceID] else { throw .noSuchFileOrDirectory }
        guard contexts[contextID]!.objects[ptID] != nil else { throw .noSuchFileOrDirectory }
        guard let previous = bound.attachedHWPT else { throw .invalidArgument }
        if previous == ptID { return ptID }
        if !bound.pasids.isEmpty && !contexts[contextID]!.isPASIDCompatible(ptID) { throw .invalidArgument }
        contexts[contextID]!.adjustAttachments(ofHWPT: previous, by: 1)
        let hwptID = try attachDevice(contextID, deviceID, to: ptID, iommu: bound.iommu)
        contexts[contextID]!.adjustAttachments(ofHWPT: previous, by: -1)
        if hwptID != previous { answerPendingFaults(contextID, hwptID: previous, deviceID: deviceID, pasid: 0) }
        releaseAttachment(contextID, hwptID: previous)
        return hwptID
    }
}
