import CIOMMUFD

/// A vDEVICE (`struct iommufd_vdevice`, viommu.c:149-268): a device's virtual id on a
/// vIOMMU. It holds the vIOMMU (EBUSY to destroy) and the device's binding; the device
/// has at most one, on any vIOMMU (`idev->vdev`).
struct MockVDevice {
    var viommuID: UInt32
    var deviceID: UInt32
    var virtID: UInt64
}

/// One record waiting in an event queue: a vEVENTQ event or the lost-events header.
struct MockEventRecord {
    /// `IOMMU_VEVENTQ_FLAG_LOST_EVENTS` for the lost-events header, else 0.
    var flags: UInt32
    var sequence: UInt32
    /// The type-specific data after the header (empty for the lost-events header).
    var data: [UInt8]
}

/// A vEVENTQ (`struct iommufd_veventq`, eventq.c:506-572): events of one type from a
/// vIOMMU, read through its file. It holds the vIOMMU; its open file holds it (EBUSY to
/// destroy until the file is closed).
struct MockVEventQueue {
    var viommuID: UInt32
    var type: UInt32
    var depth: Int
    var records: [MockEventRecord] = []
    /// The next sequence number, in `[0, INT_MAX]` (iommufd_private.h:695-696).
    var sequence: UInt32 = 0
    var fileOpen = true

    /// Events waiting, the lost-events header not counted (eventq.c:365-368).
    var eventCount: Int { records.count { $0.flags & IOMMU_VEVENTQ_FLAG_LOST_EVENTS == 0 } }

    /// `iommufd_viommu_report_event` and `iommufd_vevent_handler` (driver.c:133-177,
    /// iommufd_private.h:681-699): a full queue turns the event into the one lost-events
    /// header, which is kept last; every record takes the next sequence number.
    mutating func report(_ data: [UInt8]) {
        if records.last.map({ $0.flags & IOMMU_VEVENTQ_FLAG_LOST_EVENTS != 0 }) == true { records.removeLast() }
        let lost = eventCount >= depth
        records.append(MockEventRecord(flags: lost ? IOMMU_VEVENTQ_FLAG_LOST_EVENTS : 0, sequence: sequence, data: lost ? [] : data))
        sequence = (sequence + 1) & UInt32(Int32.max)
    }
}

/// A HW queue (`struct iommufd_hw_queue`, viommu.c:374-448): guest queue memory at an IOVA
/// of the vIOMMU's nesting parent, pinned by an internal access object (which takes the next
/// object id) for as long as it lives; the IOAS areas under it cannot be unmapped (EBUSY).
struct MockHWQueue {
    var viommuID: UInt32
    var index: UInt32
    var accessID: UInt32
    var ioasID: UInt32
    /// The pinned IOVAs, whole pages.
    var pinned: ClosedRange<UInt64>
    /// The queue in the slot before it, which it holds (`iommufd_hw_queue_depend`,
    /// selftest.c:761-765): destroying that one is EBUSY while this one lives.
    var dependsOn: UInt32?
}

/// One IO page fault group waiting in a fault queue (`struct iopf_group`): the selftest
/// driver's faults are single-record groups (it always sets `LAST_PAGE`).
struct MockFaultGroup {
    /// The attach handle it came through: the device and the PASID of the attachment (0:
    /// the RID's), which a detach or replace answers.
    var deviceID: UInt32
    var handlePASID: UInt32
    /// The record as `read(2)` gives it (`cookie` assigned when read).
    var record: iommu_hwpt_pgfault
}

/// A fault queue (`struct iommufd_fault`, eventq.c): groups waiting to be read, and the
/// ones read and not answered yet by cookie. Its open file holds it, and so does every HWPT
/// allocated with it (EBUSY to destroy).
struct MockFaultQueue {
    var deliver: [MockFaultGroup] = []
    var responses: [UInt32: MockFaultGroup] = [:]
    var fileOpen = true

    /// The lowest free cookie from 1 (`xa_alloc` with `XA_FLAGS_ALLOC1`, eventq.c:153-158).
    var nextCookie: UInt32 {
        var cookie: UInt32 = 1
        while responses[cookie] != nil { cookie += 1 }
        return cookie
    }
}
