import CIOMMUFD

/// TEST-ONLY: a mock device created by the kernel selftest (`CONFIG_IOMMUFD_TEST`) and attached to an IOAS.
///
/// Destroying ``selftestID`` unbinds the mock device and detaches it; the HWPT the kernel
/// created for it goes away with it.
public struct SelftestMockDevice: Hashable, Sendable {
    /// The selftest object; destroy it to remove the device.
    public var selftestID: SelftestID
    /// The paging HWPT the kernel allocated for the attach.
    public var hwptID: HWPTID
    /// The bound device's id.
    public var deviceID: DeviceID
}

/// TEST-ONLY: what a selftest mock device is made with (`MOCK_FLAGS_DEVICE_*`).
public struct SelftestMockDeviceFlags: OptionSet, Hashable, Sendable {
    /// The raw `dev_flags`.
    public var rawValue: UInt32
    /// Creates flags from `dev_flags`.
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// `MOCK_FLAGS_DEVICE_NO_DIRTY`: the device refuses dirty-tracking domains.
    public static let noDirty = SelftestMockDeviceFlags(rawValue: MOCK_FLAGS_DEVICE_NO_DIRTY)
    /// `MOCK_FLAGS_DEVICE_PASID`: the device takes PASIDs (a 20-bit width).
    public static let pasid = SelftestMockDeviceFlags(rawValue: MOCK_FLAGS_DEVICE_PASID)
}

extension IOAS {
    /// TEST-ONLY: creates a selftest mock device and attaches it to this IOAS, which gives the
    /// IOAS an IOMMU domain (2 KiB I/O pages, aperture [2^24, 2^31)). Only kernels built with
    /// `CONFIG_IOMMUFD_TEST`, and MockKernel, answer it. The corresponding ioctl is `IOMMU_TEST_CMD`
    /// with `IOMMU_TEST_OP_MOCK_DOMAIN`, or `IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS` with `flags`.
    @_spi(Selftest)
    public func selftestAttachMockDomain(flags: SelftestMockDeviceFlags = [], fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> SelftestMockDevice {
        let pageTable = try liveID(.testCommand, fileID: fileID, line: line)
        let answer = if flags.isEmpty {
            try SelftestIOCTL.mockDomain(seam, fd, pageTable: pageTable, fileID: fileID, line: line)
        } else {
            try SelftestIOCTL.mockDomainFlags(seam, fd, pageTable: pageTable, flags: flags.rawValue, fileID: fileID, line: line)
        }
        return SelftestMockDevice(
            selftestID: SelftestID(rawValue: answer.selftestID),
            hwptID: HWPTID(rawValue: answer.hwptID),
            deviceID: DeviceID(rawValue: answer.deviceID))
    }

    /// TEST-ONLY: reserves `[start, start + length)` in this IOAS, as a device's reserved region would.
    /// The corresponding ioctl is `IOMMU_TEST_CMD` with `IOMMU_TEST_OP_ADD_RESERVED`.
    @_spi(Selftest)
    public func selftestAddReserved(start: IOVA, length: UInt64, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        try SelftestIOCTL.addReserved(seam, fd, ioas: try liveID(.testCommand, fileID: fileID, line: line), start: start.rawValue, length: length,
                                      fileID: fileID, line: line)
    }
}

extension IOMMUFD {
    /// TEST-ONLY: asks the kernel whether the mock domain of `device` translates
    /// `[iova, iova + length)` to the pages behind `address` (what the device would reach).
    /// Throws `EINVAL` when a page differs. The corresponding ioctl is `IOMMU_TEST_CMD` with
    /// `IOMMU_TEST_OP_MD_CHECK_MAP`.
    @_spi(Selftest)
    public func selftestCheckMap(_ device: SelftestMockDevice, iova: IOVA, length: UInt64, address: UnsafeRawPointer,
                                 fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        try SelftestIOCTL.checkMap(seam, fd, hwpt: device.hwptID.rawValue, iova: iova.rawValue, length: length,
                                   userAddress: UInt64(UInt(bitPattern: address)), fileID: fileID, line: line)
    }
}

extension IOMMUFD {
    /// TEST-ONLY: asks the kernel whether every base page of `[address, address + length)`
    /// is pinned exactly `refs` times (`GUP_PIN_COUNTING_BIAS` units of the page's reference
    /// count; compound pages are not checked). With `refs: 0` it is the kernel selftests'
    /// teardown leak check: nothing still holds a pin on the memory. Throws `EIO` when a page's
    /// pin count differs, `EINVAL` for an unaligned range, `EFAULT` for unmapped memory. The
    /// corresponding ioctl is `IOMMU_TEST_CMD` with `IOMMU_TEST_OP_MD_CHECK_REFS`
    /// (`drivers/iommu/iommufd/selftest.c`, `iommufd_test_md_check_refs`).
    @_spi(Selftest)
    public func selftestCheckRefs(address: UnsafeRawPointer, length: UInt64, refs: UInt32,
                                  fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        try SelftestIOCTL.checkRefs(seam, fd, userAddress: UInt64(UInt(bitPattern: address)), length: length, refs: refs,
                                    fileID: fileID, line: line)
    }
}

extension IOMMUFD {
    /// TEST-ONLY: marks pages of the selftest mock domain `hwpt` dirty, as a device writing
    /// through it would (`IOMMU_TEST_OP_DIRTY`): page `index` is `[iova + index * pageSize, +
    /// pageSize)`. Dirty tracking must be on. Returns how many pages the kernel was asked to mark.
    @_spi(Selftest)
    public func selftestMarkDirty(_ hwpt: HWPTID, iova: IOVA, pageSize: UInt64, pageCount: Int, pages: [Int],
                                  fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> UInt64 {
        var words = [UInt64](repeating: 0, count: max(1, (pageCount + 63) / 64))
        for page in pages where page >= 0 && page < pageCount { words[page / 64] |= 1 << UInt64(page % 64) }
        var result: Result<UInt64, IOMMUError> = .success(0)
        unsafe words.withUnsafeBytes { bitmap in
            result = Result { () throws(IOMMUError) -> UInt64 in
                unsafe try SelftestIOCTL.markDirty(seam, fd, hwpt: hwpt.rawValue, iova: iova.rawValue, length: UInt64(pageCount) * pageSize,
                                                   pageSize: pageSize, bitmap: bitmap, fileID: fileID, line: line)
            }
        }
        return try result.get()
    }
}

extension IOMMUFD {
    /// TEST-ONLY: whether entry `iotlbID` (0-3) of a selftest nested HWPT's mock IOTLB holds
    /// `value` (`IOMMU_TEST_OP_MD_CHECK_IOTLB`): it starts as the allocation data's `iotlb`
    /// and an invalidation clears it to 0.
    ///
    /// - Throws: `EINVAL` when the entry holds another value or the id is past 3, `ENOENT`
    ///   for an id that is not a nested HWPT.
    @_spi(Selftest)
    public func selftestCheckIOTLB(_ hwpt: HWPTID, iotlbID: UInt32, equals value: UInt32,
                                   fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        try SelftestIOCTL.checkIOTLB(seam, fd, hwpt: hwpt.rawValue, iotlbID: iotlbID, value: value, fileID: fileID, line: line)
    }
}

extension IOMMUFD {
    /// TEST-ONLY: moves the RID attachment of the selftest mock device `selftestID` names to another page table (a
    /// HWPT of either kind, or an IOAS through an automatic domain) without detaching it
    /// (`IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE`). Returns the HWPT it is attached to now.
    @_spi(Selftest)
    @discardableResult
    public func selftestReplace(_ selftestID: SelftestID, with pageTable: UInt32,
                                fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> HWPTID {
        HWPTID(rawValue: try SelftestIOCTL.mockDomainReplace(seam, fd, device: selftestID.rawValue, pageTable: pageTable,
                                                             fileID: fileID, line: line))
    }
}

extension IOMMUFD {
    /// TEST-ONLY: attaches `pasid` of a selftest mock device to `target`
    /// (`IOMMU_TEST_OP_PASID_ATTACH`), under the same core rules as VFIO's PASID attach;
    /// `replace: true` moves an attached PASID instead (`IOMMU_TEST_OP_PASID_REPLACE`).
    ///
    /// - Throws: `EINVAL` for a target that does not take PASIDs, a RID on one that does not,
    ///   or a PASID past the device's width; `EBUSY` when attaching an attached PASID; `ENOMEM`
    ///   from the mock driver's rigged PASID 1024 on its second call.
    @_spi(Selftest)
    public func selftestAttachPASID(_ pasid: PASID, of device: SelftestMockDevice, to target: HWPTID, replace: Bool = false,
                                    fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        _ = try SelftestIOCTL.attachPASID(seam, fd, device: device.selftestID.rawValue, pasid: pasid.rawValue, pageTable: target.rawValue,
                                          replace: replace, fileID: fileID, line: line)
    }

    /// TEST-ONLY: detaches `pasid` of a selftest mock device (`IOMMU_TEST_OP_PASID_DETACH`);
    /// an unattached PASID is no error.
    @_spi(Selftest)
    public func selftestDetachPASID(_ pasid: PASID, of device: SelftestMockDevice,
                                    fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        try SelftestIOCTL.detachPASID(seam, fd, device: device.selftestID.rawValue, pasid: pasid.rawValue, fileID: fileID, line: line)
    }

    /// TEST-ONLY: whether `pasid` of a selftest mock device is attached to `hwpt`, or to
    /// nothing when `hwpt` is `nil` (`IOMMU_TEST_OP_PASID_CHECK_HWPT`).
    ///
    /// - Throws: `EINVAL` when it is not.
    @_spi(Selftest)
    public func selftestCheckPASID(_ pasid: PASID, of device: SelftestMockDevice, isOn hwpt: HWPTID?,
                                   fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        try SelftestIOCTL.checkPASID(seam, fd, device: device.selftestID.rawValue, pasid: pasid.rawValue, hwpt: hwpt?.rawValue ?? 0,
                                     fileID: fileID, line: line)
    }
}

extension IOMMUFD {
    /// TEST-ONLY: makes a selftest mock device raise an IO page fault at `address`, for
    /// `pasid` (`nil`: the RID), in page request group `group` (`IOMMU_TEST_OP_TRIGGER_IOPF`).
    /// The kernel delivers it to the fault queue of the HWPT serving that attachment, or
    /// drops it (no error either way).
    @_spi(Selftest)
    public func selftestTriggerIOPF(_ device: SelftestMockDevice, pasid: PASID? = nil, group: UInt32 = 2,
                                    permissions: IOPageFaultPermissions = [.read, .write], address: UInt64,
                                    fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        try SelftestIOCTL.triggerIOPF(seam, fd, device: device.deviceID.rawValue, pasid: pasid?.rawValue ?? 0, group: group,
                                      permissions: permissions.rawValue, address: address, fileID: fileID, line: line)
    }

    /// TEST-ONLY: makes a selftest mock device, attached through a vIOMMU, report an event
    /// carrying its virtual id to that vIOMMU's selftest event queue
    /// (`IOMMU_TEST_OP_TRIGGER_VEVENT`).
    ///
    /// - Throws: `ENOENT` when the device is not attached through a vIOMMU (or its virtual
    ///   id is 0), `EOPNOTSUPP` when the vIOMMU has no selftest event queue.
    @_spi(Selftest)
    public func selftestTriggerVEvent(_ device: SelftestMockDevice, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        try SelftestIOCTL.triggerVEvent(seam, fd, device: device.deviceID.rawValue, fileID: fileID, line: line)
    }

    /// TEST-ONLY: whether cache `cacheID` (0-3) of a selftest mock device holds `value`
    /// (`IOMMU_TEST_OP_DEV_CHECK_CACHE`; they start as `IOMMU_TEST_DEV_CACHE_DEFAULT`, and
    /// vIOMMU invalidation through the device's vDEVICE clears them).
    ///
    /// - Throws: `EINVAL` when it does not.
    @_spi(Selftest)
    public func selftestCheckDeviceCache(_ device: SelftestMockDevice, cacheID: UInt32, equals value: UInt32,
                                         fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        try SelftestIOCTL.checkDeviceCache(seam, fd, device: device.deviceID.rawValue, cacheID: cacheID, value: value, fileID: fileID, line: line)
    }
}
