import CIOMMUFD
/// One open `/dev/iommu`: its objects and the page-sharing state between them.
struct IOMMUContext {
    var objects: [UInt32: MockObject] = [:]
    var pages: [Int: PagesObject] = [:]
    var nextPagesID = 1
    var accountingMode: UInt64 = 0
    /// The IOAS used by the VFIO compatibility container (`IOMMU_VFIO_IOAS`).
    var vfioIOAS: UInt32?
    /// Pages currently pinned per pages object (indexes into the object).
    var pinned: [Int: IntervalSet] = [:]
    /// The selftest vIOMMUs' HW queue slots (`mock_viommu->hw_queue[]`): slot index to
    /// queue id. The kernel's driver never records a queue's index (selftest.c:164,
    /// 767-771), so destroying any queue empties slot 0 and leaves its own slot holding a
    /// stale pointer until the vIOMMU goes; the model keeps the same slots.
    var hwQueueSlots: [UInt32: [UInt32: UInt32]] = [:]
    /// The regions drivers offer to mmap from the descriptor, by offset (`ictx->mt_mmap`).
    var mmapRegions: [UInt64: UInt64] = [:]

    /// `_iommufd_alloc_mmap` (driver.c:39-70): the lowest free range of `length` bytes at
    /// or above PAGE_SIZE (the first page is skipped so that an offset is never 0).
    mutating func allocateMMapRegion(length: UInt64, pageSize: UInt64) -> UInt64 {
        var candidate = pageSize
        for (offset, size) in mmapRegions.sorted(by: { $0.key < $1.key }) where offset < candidate + length {
            candidate = max(candidate, offset + size)
        }
        mmapRegions[candidate] = length
        return candidate
    }

    /// The lowest free id, starting at 1, as `xa_alloc` with `XA_FLAGS_ALLOC1` gives them.
    func lowestFreeID() -> UInt32 {
        var candidate: UInt32 = 1
        while objects[candidate] != nil { candidate += 1 }
        return candidate
    }

    mutating func insert(_ object: MockObject) -> UInt32 {
        let id = lowestFreeID()
        objects[id] = object
        return id
    }

    /// The IOAS with `id`, or `ENOENT` (also for an object of another type, as `iommufd_get_ioas` answers).
    func ioas(_ id: UInt32) -> IOPageTable? {
        if case .ioas(let table)? = objects[id] { return table }
        return nil
    }

    /// The paging HWPT with this id, if it is one.
    func hwptPaging(_ id: UInt32) -> MockHWPT? {
        if case .hwptPaging(let hwpt)? = objects[id] { return hwpt }
        return nil
    }

    /// The nested HWPT with this id, if it is one.
    func hwptNested(_ id: UInt32) -> MockNestedHWPT? {
        if case .hwptNested(let hwpt)? = objects[id] { return hwpt }
        return nil
    }

    /// The IOAS a HWPT translates through: its own for a paging HWPT, its parent's for a
    /// nested one (`find_hwpt_paging`, device.c).
    func ioasID(ofHWPT id: UInt32) -> UInt32? {
        switch objects[id] {
        case .hwptPaging(let hwpt)?: hwpt.ioasID
        case .hwptNested(let nested)?: hwptPaging(nested.parentID)?.ioasID
        default: nil
        }
    }

    /// Whether a HWPT was allocated PASID-compatible (`IOMMU_HWPT_ALLOC_PASID`); automatic
    /// ones never are (device.c).
    func isPASIDCompatible(_ id: UInt32) -> Bool {
        switch objects[id] {
        case .hwptPaging(let hwpt)?: hwpt.flags & IOMMU_HWPT_ALLOC_PASID != 0
        case .hwptNested(let nested)?: nested.flags & IOMMU_HWPT_ALLOC_PASID != 0
        default: false
        }
    }

    /// The fault queue of a HWPT of either kind, if it was allocated with one.
    func faultID(ofHWPT id: UInt32) -> UInt32? {
        switch objects[id] {
        case .hwptPaging(let hwpt)?: hwpt.faultID
        case .hwptNested(let nested)?: nested.faultID
        default: nil
        }
    }

    /// The number of devices attached to a HWPT of either kind.
    func attachedDevices(ofHWPT id: UInt32) -> Int {
        switch objects[id] {
        case .hwptPaging(let hwpt)?: hwpt.attachedDevices
        case .hwptNested(let nested)?: nested.attachedDevices
        default: 0
        }
    }

    /// Changes the number of devices attached to a HWPT of either kind.
    mutating func adjustAttachments(ofHWPT id: UInt32, by delta: Int) {
        switch objects[id] {
        case .hwptPaging(var hwpt)?:
            hwpt.attachedDevices += delta
            objects[id] = .hwptPaging(hwpt)
        case .hwptNested(var nested)?:
            nested.attachedDevices += delta
            objects[id] = .hwptNested(nested)
        default:
            break
        }
    }
}

/// An object in a context's table.
enum MockObject {
    case ioas(IOPageTable)
    case hwptPaging(MockHWPT)
    case hwptNested(MockNestedHWPT)
    case viommu(MockVIOMMU)
    case device(MockBoundDevice)
    case selftest(deviceID: UInt32)
    case vdevice(MockVDevice)
    case veventq(MockVEventQueue)
    case hwQueue(MockHWQueue)
    case fault(MockFaultQueue)
    /// An internal access object (a HW queue's pin, device.c:1228-1249).
    case access(hwQueueID: UInt32)
    /// A vDEVICE destroyed because its device went away: its id stays taken and every
    /// lookup of it is ENOENT until the context closes (main.c:268-278).
    case tombstone

    /// Whether other objects hold references to it (then `IOMMU_DESTROY` answers `EBUSY`).
    var kindName: String {
        switch self {
        case .ioas: "IOAS"
        case .hwptPaging: "HWPT_PAGING"
        case .hwptNested: "HWPT_NESTED"
        case .viommu: "VIOMMU"
        case .device: "DEVICE"
        case .selftest: "SELFTEST"
        case .vdevice: "VDEVICE"
        case .veventq: "VEVENTQ"
        case .hwQueue: "HW_QUEUE"
        case .fault: "FAULT"
        case .access: "ACCESS"
        case .tombstone: "TOMBSTONE"
        }
    }
}

/// A paging HWPT: one IOMMU domain over an IOAS.
struct MockHWPT {
    var ioasID: UInt32
    var autoDomain: Bool
    /// The IOMMU driver that owns the domain (`domain->owner`).
    var driver: DeviceIOMMU.Driver
    var ioPageSize: UInt64
    var aperture: ClosedRange<UInt64>
    var attachedDevices: Int = 0
    /// The `IOMMU_HWPT_ALLOC_*` flags it was allocated with (none for an automatic one).
    var flags: UInt32 = 0
    /// Dirty tracking is on (`IOMMU_HWPT_SET_DIRTY_TRACKING`).
    var dirtyTracking = false
    /// The I/O pages (by IOVA, `ioPageSize` each) whose dirty bit is set.
    var dirtyPages: Set<UInt64> = []
    /// The fault queue its IO page faults go to (`IOMMU_HWPT_FAULT_ID_VALID`), which it holds.
    var faultID: UInt32?

    /// Whether it has dirty operations (allocated with `IOMMU_HWPT_ALLOC_DIRTY_TRACKING`).
    var tracksDirty: Bool { flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING != 0 }
    /// Whether it is a domain of the selftest's mock IOMMU.
    var isSelftestDomain: Bool { driver == .selftest }
}

/// A nested HWPT (`struct iommufd_hwpt_nested`): a domain of its parent's driver whose first
/// stage is the user's table; the selftest driver's keeps a four-entry mock IOTLB
/// (`struct mock_iommu_domain_nested`, selftest.c).
struct MockNestedHWPT {
    /// The nesting parent, a paging HWPT (it holds a reference: destroying it is EBUSY).
    var parentID: UInt32
    /// The vIOMMU it was allocated on (which holds the parent instead), if it was.
    var viommuID: UInt32? = nil
    var driver: DeviceIOMMU.Driver
    var attachedDevices: Int = 0
    /// The `IOMMU_HWPT_ALLOC_*` flags it was allocated with.
    var flags: UInt32
    /// `iotlb[MOCK_NESTED_DOMAIN_IOTLB_NUM]`: each starts as the data's `iotlb`, an
    /// invalidation sets an entry to 0.
    var iotlb: [UInt32]
    /// The fault queue its IO page faults go to, which it holds.
    var faultID: UInt32? = nil
}

/// A vIOMMU (`struct iommufd_viommu`) on a nesting parent, which it holds.
struct MockVIOMMU {
    var parentID: UInt32
    var driver: DeviceIOMMU.Driver
    var type: UInt32
    /// The selftest vIOMMU's mmap region (offset), if it was given data.
    var mmapOffset: UInt64?
}

/// A device bound to the context: a selftest mock device or a VFIO function.
struct MockBoundDevice {
    var attachedHWPT: UInt32?
    /// The IOMMU driver behind it.
    var iommu: DeviceIOMMU = .selftest
    /// A selftest mock device's `MOCK_FLAGS_DEVICE_*` (`mock_dev_create`, selftest.c:983-1020).
    var selftestFlags: UInt32 = 0
    /// The attached PASIDs and the HWPT each is on (each holds the HWPT).
    var pasids: [UInt32: UInt32] = [:]

    /// `device_iommu_capable(dev, IOMMU_CAP_DIRTY_TRACKING)`: the driver's answer, which the
    /// selftest driver withholds from a device made with `MOCK_FLAGS_DEVICE_NO_DIRTY`
    /// (`mock_domain_capable`, selftest.c).
    var tracksDirty: Bool { iommu.tracksDirty && selftestFlags & MOCK_FLAGS_DEVICE_NO_DIRTY == 0 }
    /// `ilog2(dev->iommu->max_pasids)`: 20 (`MOCK_PASID_WIDTH`) for a selftest device made
    /// with `MOCK_FLAGS_DEVICE_PASID`; a VFIO function's configured width (0 for QEMU 7.2's).
    var maxPASIDLog2: UInt8 { selftestFlags & MOCK_FLAGS_DEVICE_PASID != 0 ? UInt8(MOCK_PASID_WIDTH) : UInt8(pasidWidth) }
    /// A VFIO function's PASID width (its configuration's `pasidWidth`).
    var pasidWidth = 0
    /// A VFIO function's page request support (ATS and PRI): its IOMMU reports its faults.
    var supportsPageRequests = false
    /// The vIOMMU and virtual id the selftest driver cached at the last attach to a nested
    /// HWPT of a vIOMMU (`mdev->viommu`, `mdev->vdev_id`, selftest.c:226-240): refreshed only
    /// when the vIOMMU changes, so a destroyed vDEVICE's id lingers.
    var eventVIOMMU: UInt32?
    var eventVirtID: UInt64 = 0
    /// The selftest device's caches (`mdev->cache`), `IOMMU_TEST_DEV_CACHE_DEFAULT` at birth,
    /// cleared by vIOMMU invalidation.
    var caches = [UInt32](repeating: IOMMU_TEST_DEV_CACHE_DEFAULT, count: Int(MOCK_DEV_CACHE_NUM))
    /// The selftest driver's `pasid_1024_fake_error`: armed by an attach of PASID 1024,
    /// it fails the next one with `ENOMEM` (selftest.c:252-289).
    var pasid1024FailsNext = false

    /// `dev->iommu->max_pasids` (iommu.c:438-454): `1 << pasid-num-bits` for a selftest
    /// device, so 1 without `MOCK_FLAGS_DEVICE_PASID` (selftest.c:984-1020), and 0 for a PCI
    /// function without a PASID capability, which the IOMMU layer then skips.
    var maxPASIDs: UInt64 {
        if iommu == .selftest { return UInt64(1) << UInt64(maxPASIDLog2) }
        return pasidWidth == 0 ? 0 : UInt64(1) << UInt64(min(pasidWidth, 32))
    }
}

/// The IOMMU driver behind a bound device, as far as the model tells drivers apart.
enum DeviceIOMMU: Equatable {
    /// The kernel selftest's mock IOMMU: 2 KiB pages in its aperture, dirty tracking,
    /// nesting parents (selftest.c).
    case selftest
    /// QEMU 7.2's intel-iommu with an input address width: 4 KiB pages, no scalable mode,
    /// so no nesting parent and no dirty tracking (intel/iommu.c:2944-2965).
    case intel(addressWidth: Int, tracksDirty: Bool = false)
    /// No IOMMU (the unsafe no-IOMMU cdev mode): iommufd keeps a software table only, for
    /// `IOMMU_IOAS_NOIOMMU_GET_PA` (hwpt_noiommu.c).
    case none

    /// The driver alone, without the unit's geometry (what `domain->owner` compares).
    enum Driver: Equatable {
        case selftest
        case intel
        case none
    }

    /// The driver behind the device.
    var driver: Driver {
        switch self {
        case .selftest: .selftest
        case .intel: .intel
        case .none: .none
        }
    }

    /// The domain's I/O page size.
    var ioPageSize: UInt64 {
        switch self {
        case .selftest: IOMMU_TEST_MOCK_PAGE_SIZE
        case .intel, .none: 4096
        }
    }

    /// The domain's aperture.
    var aperture: ClosedRange<UInt64> {
        switch self {
        case .selftest: IOMMU_TEST_MOCK_APERTURE_START...IOMMU_TEST_MOCK_APERTURE_LAST
        case .intel(let width, _): 0...(width >= 64 ? UInt64.max : (UInt64(1) << UInt64(width)) - 1)
        case .none: 0...UInt64.max  // the software AMDv1 table of hwpt_noiommu.c:50-55
        }
    }

    /// `device_iommu_capable(dev, IOMMU_CAP_DIRTY_TRACKING)`: always for the selftest IOMMU;
    /// for VT-d only a unit with second-stage access/dirty bits (`intel_iommu_capable`,
    /// `ssads_supported`), which QEMU 7.2 lacks.
    var tracksDirty: Bool {
        switch self {
        case .selftest: true
        case .intel(_, let tracksDirty): tracksDirty
        case .none: false
        }
    }
}

/// The memory behind one or more areas (`struct iopt_pages`).
struct PagesObject {
    enum Source: Equatable {
        /// User memory from this page-aligned address.
        case user(base: UInt64)
        /// A memfd from this page-aligned offset.
        case file(memoryFileID: Int, start: UInt64)
        /// A file that is neither a memfd nor a dma-buf: `MAP_FILE` takes it, but its pages
        /// cannot be pinned (memfd_pin_folios refuses a file that is not shmem or hugetlbfs,
        /// mm/gup.c:3448-3455), so a domain that needs them is EINVAL.
        case unpinnableFile(start: UInt64)
        /// A vfio-pci dma-buf from this page-aligned offset: BAR memory, never pinned.
        case dmaBuf(id: Int, start: UInt64)
    }

    var source: Source
    var pageCount: UInt64
    var writable: Bool
    var areaReferences = 0
    /// The process its pins are charged to (`source_mm`/`source_user`): the mapper's, until
    /// `IOMMU_IOAS_CHANGE_PROCESS`.
    var ownerProcess: Int32 = 0
    /// A dma-buf's pages after its exporter revoked them: unmapped from every domain, for good.
    var revoked = false
}

/// One mapping inside an IOAS (`struct iopt_area`).
struct MappedArea {
    var start: UInt64
    var last: UInt64
    var pagesID: Int
    /// Offset of the area's first byte inside its pages object.
    var startByte: UInt64
    var readable: Bool
    var writeable: Bool

    var length: UInt64 { last - start + 1 }
    var firstPageIndex: UInt64 { startByte / pageSize }
    var lastPageIndex: UInt64 { (startByte + length - 1) / pageSize }
}

/// A reserved IOVA range and who reserved it (`struct iopt_reserved`'s owner).
struct ReservedRange {
    enum Owner: Equatable {
        case selftest
        /// The outside of a domain's aperture, for as long as the domain is in the IOAS.
        case domain(hwptID: UInt32)
        /// A device's reserved regions, for as long as the device is attached to a page
        /// table of the IOAS (iopt_table_enforce_dev_resv_regions with the device as owner,
        /// io_pagetable.c:1583-1630; removed at detach, device.c:787).
        case device(deviceID: UInt32)
    }

    var range: ClosedRange<UInt64>
    var owner: Owner
}
