import CIOMMUFD
import SystemPackage

/// TEST-ONLY: the selftest family of the ioctl catalogue, one function per `IOMMU_TEST_CMD`
/// operation the toolkit uses (`drivers/iommu/iommufd/selftest.c`). Only kernels built with
/// `CONFIG_IOMMUFD_TEST`, and MockKernel, answer them.
package enum SelftestIOCTL {
    /// The answer of `IOMMU_TEST_OP_MOCK_DOMAIN`: the ids in the kernel's order.
    package struct MockDomainAnswer {
        /// The selftest device object (destroy it to remove the device).
        package var selftestID: UInt32
        /// The paging HWPT the kernel allocated for the attach.
        package var hwptID: UInt32
        /// The bound device.
        package var deviceID: UInt32
    }

    /// A zeroed command with its size and operation.
    @usableFromInline
    static func command(_ op: UInt32, id: UInt32) -> iommu_test_cmd {
        var command = iommu_test_cmd()
        command.size = UInt32(MemoryLayout<iommu_test_cmd>.size)
        command.op = op
        command.id = id
        return command
    }

    /// `IOMMU_TEST_OP_ADD_RESERVED`: reserves `[start, start + length)` in an IOAS.
    package static func addReserved(_ seam: IOCTLSeam, _ fd: Int32, ioas: UInt32, start: UInt64, length: UInt64,
                                    fileID: StaticString, line: Int) throws(IOMMUError) {
        var command = command(IOMMU_TEST_OP_ADD_RESERVED, id: ioas)
        command.add_reserved.start = start
        command.add_reserved.length = length
        try issueIOCTL(seam, fd, IOMMU_TEST_CMD, .testCommand, &command,
                       IOMMUErrorContext(objectID: ioas, iova: start, length: length), fileID: fileID, line: line)
    }

    /// `IOMMU_TEST_OP_MOCK_DOMAIN`: a mock device attached to `pageTable` (an IOAS or a HWPT).
    package static func mockDomain(_ seam: IOCTLSeam, _ fd: Int32, pageTable: UInt32,
                                   fileID: StaticString, line: Int) throws(IOMMUError) -> MockDomainAnswer {
        var command = command(IOMMU_TEST_OP_MOCK_DOMAIN, id: pageTable)
        try issueIOCTL(seam, fd, IOMMU_TEST_CMD, .testCommand, &command, IOMMUErrorContext(objectID: pageTable), fileID: fileID, line: line)
        return MockDomainAnswer(selftestID: command.mock_domain.out_stdev_id, hwptID: command.mock_domain.out_hwpt_id,
                                deviceID: command.mock_domain.out_idev_id)
    }

    /// `IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS`: as ``mockDomain(_:_:pageTable:fileID:line:)`` with
    /// device flags (`MOCK_FLAGS_DEVICE_NO_DIRTY` 1, `MOCK_FLAGS_DEVICE_PASID` 4).
    package static func mockDomainFlags(_ seam: IOCTLSeam, _ fd: Int32, pageTable: UInt32, flags: UInt32,
                                        fileID: StaticString, line: Int) throws(IOMMUError) -> MockDomainAnswer {
        var command = command(IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS, id: pageTable)
        command.mock_domain_flags.dev_flags = flags
        try issueIOCTL(seam, fd, IOMMU_TEST_CMD, .testCommand, &command, IOMMUErrorContext(objectID: pageTable), fileID: fileID, line: line)
        return MockDomainAnswer(selftestID: command.mock_domain_flags.out_stdev_id, hwptID: command.mock_domain_flags.out_hwpt_id,
                                deviceID: command.mock_domain_flags.out_idev_id)
    }

    /// `IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT`: the kernel's pinning batch size in bytes (at
    /// least 12), for exercising its batch boundaries.
    package static func setTemporaryMemoryLimit(_ seam: IOCTLSeam, _ fd: Int32, limit: UInt32,
                                                fileID: StaticString, line: Int) throws(IOMMUError) {
        var command = command(IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT, id: 0)
        command.memory_limit.limit = limit
        try issueIOCTL(seam, fd, IOMMU_TEST_CMD, .testCommand, &command, IOMMUErrorContext(), fileID: fileID, line: line)
    }

    /// `IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE`: moves a mock device to another IOAS or HWPT;
    /// returns the page table it is attached to now.
    package static func mockDomainReplace(_ seam: IOCTLSeam, _ fd: Int32, device: UInt32, pageTable: UInt32,
                                          fileID: StaticString, line: Int) throws(IOMMUError) -> UInt32 {
        var command = command(IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, id: device)
        command.mock_domain_replace.pt_id = pageTable
        try issueIOCTL(seam, fd, IOMMU_TEST_CMD, .testCommand, &command,
                       IOMMUErrorContext(objectID: device, otherObjectID: pageTable), fileID: fileID, line: line)
        return command.mock_domain_replace.pt_id
    }

    /// `IOMMU_TEST_OP_MD_CHECK_MAP`: whether the mock domain `hwpt` translates
    /// `[iova, iova + length)` to the pages behind `userAddress` (`EINVAL` when a page differs).
    package static func checkMap(_ seam: IOCTLSeam, _ fd: Int32, hwpt: UInt32, iova: UInt64, length: UInt64, userAddress: UInt64,
                                 fileID: StaticString, line: Int) throws(IOMMUError) {
        var command = command(IOMMU_TEST_OP_MD_CHECK_MAP, id: hwpt)
        command.check_map.iova = iova
        command.check_map.length = length
        command.check_map.uptr = userAddress
        try issueIOCTL(seam, fd, IOMMU_TEST_CMD, .testCommand, &command,
                       IOMMUErrorContext(objectID: hwpt, iova: iova, length: length, userAddress: userAddress), fileID: fileID, line: line)
    }

    /// `IOMMU_TEST_OP_DIRTY`: marks dirty, in the mock domain `hwpt` (dirty tracking on), the
    /// `pageSize` pages of `[iova, iova + length)` whose bit is set in `bitmap`; returns how
    /// many bits were set.
    @unsafe
    package static func markDirty(_ seam: IOCTLSeam, _ fd: Int32, hwpt: UInt32, iova: UInt64, length: UInt64, pageSize: UInt64,
                                  bitmap: UnsafeRawBufferPointer, fileID: StaticString, line: Int) throws(IOMMUError) -> UInt64 {
        var command = command(IOMMU_TEST_OP_DIRTY, id: hwpt)
        command.dirty.iova = iova
        command.dirty.length = length
        command.dirty.page_size = pageSize
        command.dirty.uptr = UInt64(UInt(bitPattern: bitmap.baseAddress))
        try issueIOCTL(seam, fd, IOMMU_TEST_CMD, .testCommand, &command,
                       IOMMUErrorContext(objectID: hwpt, iova: iova, length: length), fileID: fileID, line: line)
        return command.dirty.out_nr_dirty
    }

    /// `IOMMU_TEST_OP_MD_CHECK_IOTLB`: whether entry `iotlbID` (0-3) of the selftest nested
    /// HWPT `hwpt`'s mock IOTLB holds `value` (`EINVAL` when it does not or the id is past 3).
    package static func checkIOTLB(_ seam: IOCTLSeam, _ fd: Int32, hwpt: UInt32, iotlbID: UInt32, value: UInt32,
                                   fileID: StaticString, line: Int) throws(IOMMUError) {
        var command = command(IOMMU_TEST_OP_MD_CHECK_IOTLB, id: hwpt)
        command.check_iotlb.id = iotlbID
        command.check_iotlb.iotlb = value
        try issueIOCTL(seam, fd, IOMMU_TEST_CMD, .testCommand, &command, IOMMUErrorContext(objectID: hwpt), fileID: fileID, line: line)
    }

    /// `IOMMU_TEST_OP_MD_CHECK_REFS`: whether every base page of `[userAddress, userAddress + length)`
    /// is pinned exactly `refs` times (`EIO` when one is not).
    package static func checkRefs(_ seam: IOCTLSeam, _ fd: Int32, userAddress: UInt64, length: UInt64, refs: UInt32,
                                  fileID: StaticString, line: Int) throws(IOMMUError) {
        var command = command(IOMMU_TEST_OP_MD_CHECK_REFS, id: 0)
        command.check_refs.uptr = userAddress
        command.check_refs.length = length
        command.check_refs.refs = refs
        try issueIOCTL(seam, fd, IOMMU_TEST_CMD, .testCommand, &command,
                       IOMMUErrorContext(length: length, userAddress: userAddress), fileID: fileID, line: line)
    }

    /// `IOMMU_TEST_OP_PASID_ATTACH` (`replace: false`) or `IOMMU_TEST_OP_PASID_REPLACE`: puts
    /// `pasid` of the mock device `device` (its selftest object) on `pageTable` (PASID 0 is
    /// the RID); returns the page table the kernel wrote back.
    package static func attachPASID(_ seam: IOCTLSeam, _ fd: Int32, device: UInt32, pasid: UInt32, pageTable: UInt32, replace: Bool,
                                    fileID: StaticString, line: Int) throws(IOMMUError) -> UInt32 {
        var command = command(replace ? IOMMU_TEST_OP_PASID_REPLACE : IOMMU_TEST_OP_PASID_ATTACH, id: device)
        command.pasid_attach.pasid = pasid
        command.pasid_attach.pt_id = pageTable
        try issueIOCTL(seam, fd, IOMMU_TEST_CMD, .testCommand, &command,
                       IOMMUErrorContext(objectID: device, otherObjectID: pageTable), fileID: fileID, line: line)
        return command.pasid_attach.pt_id
    }

    /// `IOMMU_TEST_OP_PASID_DETACH`: detaches `pasid` of a mock device (always succeeds for
    /// an existing device, attached or not).
    package static func detachPASID(_ seam: IOCTLSeam, _ fd: Int32, device: UInt32, pasid: UInt32,
                                    fileID: StaticString, line: Int) throws(IOMMUError) {
        var command = command(IOMMU_TEST_OP_PASID_DETACH, id: device)
        command.pasid_detach.pasid = pasid
        try issueIOCTL(seam, fd, IOMMU_TEST_CMD, .testCommand, &command, IOMMUErrorContext(objectID: device), fileID: fileID, line: line)
    }

    /// `IOMMU_TEST_OP_PASID_CHECK_HWPT`: whether `pasid` of a mock device is on `hwpt` (0:
    /// on nothing); `EINVAL` when it is not.
    package static func checkPASID(_ seam: IOCTLSeam, _ fd: Int32, device: UInt32, pasid: UInt32, hwpt: UInt32,
                                   fileID: StaticString, line: Int) throws(IOMMUError) {
        var command = command(IOMMU_TEST_OP_PASID_CHECK_HWPT, id: device)
        command.pasid_check.pasid = pasid
        command.pasid_check.hwpt_id = hwpt
        try issueIOCTL(seam, fd, IOMMU_TEST_CMD, .testCommand, &command,
                       IOMMUErrorContext(objectID: device, otherObjectID: hwpt), fileID: fileID, line: line)
    }

    /// `IOMMU_TEST_OP_TRIGGER_VEVENT`: the mock device `device` (its bound id) reports an
    /// event to the selftest vEVENTQ of the vIOMMU it is attached through.
    package static func triggerVEvent(_ seam: IOCTLSeam, _ fd: Int32, device: UInt32, fileID: StaticString, line: Int) throws(IOMMUError) {
        var command = command(IOMMU_TEST_OP_TRIGGER_VEVENT, id: 0)
        command.trigger_vevent.dev_id = device
        try issueIOCTL(seam, fd, IOMMU_TEST_CMD, .testCommand, &command, IOMMUErrorContext(objectID: device), fileID: fileID, line: line)
    }

    /// `IOMMU_TEST_OP_DEV_CHECK_CACHE`: whether cache `cacheID` (0-3) of the mock device
    /// `device` (its bound id) holds `value` (`EINVAL` when not).
    package static func checkDeviceCache(_ seam: IOCTLSeam, _ fd: Int32, device: UInt32, cacheID: UInt32, value: UInt32,
                                         fileID: StaticString, line: Int) throws(IOMMUError) {
        var command = command(IOMMU_TEST_OP_DEV_CHECK_CACHE, id: device)
        command.check_dev_cache.id = cacheID
        command.check_dev_cache.cache = value
        try issueIOCTL(seam, fd, IOMMU_TEST_CMD, .testCommand, &command, IOMMUErrorContext(objectID: device), fileID: fileID, line: line)
    }

    /// `IOMMU_TEST_OP_TRIGGER_IOPF`: the mock device `device` (its bound id) raises an IO
    /// page fault at `address` for `pasid` (0: the RID) in page request group `group` with
    /// `IOMMU_PGFAULT_PERM_*` `permissions`.
    package static func triggerIOPF(_ seam: IOCTLSeam, _ fd: Int32, device: UInt32, pasid: UInt32, group: UInt32, permissions: UInt32,
                                    address: UInt64, fileID: StaticString, line: Int) throws(IOMMUError) {
        var command = command(IOMMU_TEST_OP_TRIGGER_IOPF, id: 0)
        command.trigger_iopf.dev_id = device
        command.trigger_iopf.pasid = pasid
        command.trigger_iopf.grpid = group
        command.trigger_iopf.perm = permissions
        command.trigger_iopf.addr = address
        try issueIOCTL(seam, fd, IOMMU_TEST_CMD, .testCommand, &command, IOMMUErrorContext(objectID: device, iova: address), fileID: fileID, line: line)
    }
}
