import CIOMMUFD
import IOMMUFDSystem
import SystemPackage

// The objects that live on a vIOMMU: vDEVICEs, vEVENTQs and HW queues
// (drivers/iommu/iommufd/viommu.c, eventq.c), and the selftest driver's side of them
// (IOMMU_TEST_OP_TRIGGER_VEVENT, IOMMU_TEST_OP_DEV_CHECK_CACHE, selftest.c).
extension KernelState {
    /// The vIOMMU with `id`, or `ENOENT` for anything else (`iommufd_get_viommu`).
    func viommu(_ contextID: Int, _ id: UInt32) throws(Errno) -> MockVIOMMU {
        guard case .viommu(let viommu)? = contexts[contextID]!.objects[id] else { throw .noSuchFileOrDirectory }
        return viommu
    }

    /// The vDEVICE of a device on a vIOMMU, if it has one there.
    func vdevice(of deviceID: UInt32, on viommuID: UInt32, _ contextID: Int) -> MockVDevice? {
        for object in contexts[contextID]!.objects.values {
            if case .vdevice(let vdevice) = object, vdevice.deviceID == deviceID, vdevice.viommuID == viommuID { return vdevice }
        }
        return nil
    }

    /// `IOMMU_VDEVICE_ALLOC` (`iommufd_vdevice_alloc_ioctl`, viommu.c:149-268): the vIOMMU
    /// (`ENOENT`), then the device (`ENOENT`), its IOMMU (`EINVAL` for another driver's
    /// vIOMMU), a vDEVICE the device already has on any vIOMMU (`EEXIST`), then the virtual id
    /// taken on this vIOMMU (`EEXIST`, after the object was allocated and aborted: its id is
    /// reused). Any 64-bit virtual id is accepted, 0 included.
    mutating func vdeviceAlloc(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        var cmd = unsafe command.load(iommu_vdevice_alloc.self)
        let viommu = try viommu(contextID, cmd.viommu_id)
        guard case .device(let device)? = contexts[contextID]!.objects[cmd.dev_id] else { throw .noSuchFileOrDirectory }
        guard device.iommu.driver == viommu.driver else { throw .invalidArgument }
        let vdevices = contexts[contextID]!.objects.values.compactMap { object -> MockVDevice? in
            if case .vdevice(let vdevice) = object { return vdevice }
            return nil
        }
        guard !vdevices.contains(where: { $0.deviceID == cmd.dev_id }) else { throw .fileExists }
        guard !vdevices.contains(where: { $0.viommuID == cmd.viommu_id && $0.virtID == cmd.virt_id }) else { throw .fileExists }
        cmd.out_vdevice_id = contexts[contextID]!.insert(.vdevice(MockVDevice(viommuID: cmd.viommu_id, deviceID: cmd.dev_id, virtID: cmd.virt_id)))
        unsafe command.respond(cmd)
    }

    /// The deepest `IOMMU_VEVENTQ_DEPTH` (eventq.c:503-504).
    static let maximumEventQueueDepth: UInt32 = 1 << 19

    /// `IOMMU_VEVENTQ_ALLOC` (`iommufd_veventq_alloc`, eventq.c:506-572): flags, `__reserved`
    /// and the default type 0 (`EOPNOTSUPP`; any other type is taken), the depth (1 to 2^19,
    /// `EINVAL`), the vIOMMU (`ENOENT`), a queue of the same type there (`EEXIST`). Returns a
    /// close-on-exec descriptor, the lowest free one.
    mutating func veventqAlloc(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        var cmd = unsafe command.load(iommu_veventq_alloc.self)
        guard cmd.flags == 0, cmd.__reserved == 0, cmd.type != IOMMU_VEVENTQ_TYPE_DEFAULT else { throw .notSupported }
        guard cmd.veventq_depth != 0, cmd.veventq_depth <= Self.maximumEventQueueDepth else { throw .invalidArgument }
        _ = try viommu(contextID, cmd.viommu_id)
        let taken = contexts[contextID]!.objects.values.contains { object in
            if case .veventq(let queue) = object { return queue.viommuID == cmd.viommu_id && queue.type == cmd.type }
            return false
        }
        guard !taken else { throw .fileExists }
        let id = contexts[contextID]!.insert(.veventq(MockVEventQueue(viommuID: cmd.viommu_id, type: cmd.type, depth: Int(cmd.veventq_depth))))
        let fd = lowestFreeDescriptor()
        descriptors[fd] = .eventQueue(contextID: contextID, objectID: id)
        cmd.out_veventq_id = id
        cmd.out_veventq_fd = UInt32(bitPattern: fd)
        unsafe command.respond(cmd)
    }

    /// `IOMMU_HW_QUEUE_ALLOC` (`iommufd_hw_queue_alloc_ioctl`, viommu.c:374-448): flags and
    /// the default type (`EOPNOTSUPP`), length 0 (`EINVAL`), an IOVA range that wraps
    /// (`EOVERFLOW`), the vIOMMU (`ENOENT`), a type the driver has no queue for
    /// (`EOPNOTSUPP`); then the pin through an internal access object, which takes the id
    /// after the queue's: the whole range mapped (`ENOENT`) and readable (`EPERM`); then the
    /// selftest driver (`mock_hw_queue_init_phys`, selftest.c:725-775): an index past
    /// `IOMMU_TEST_HW_QUEUE_MAX` (`EINVAL`), taken (`EEXIST`), or without the one before it
    /// (`EIO`); a queue above 0 holds the one before it.
    mutating func hwQueueAlloc(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        var cmd = unsafe command.load(iommu_hw_queue_alloc.self)
        guard cmd.flags == 0, cmd.type != IOMMU_HW_QUEUE_TYPE_DEFAULT else { throw .notSupported }
        guard cmd.length != 0 else { throw .invalidArgument }
        let (last, overflow) = cmd.nesting_parent_iova.addingReportingOverflow(cmd.length - 1)
        guard !overflow else { throw .overflow }
        let viommu = try viommu(contextID, cmd.viommu_id)
        guard viommu.driver == .selftest, cmd.type == IOMMU_HW_QUEUE_TYPE_SELFTEST else { throw .notSupported }
        let queueID = contexts[contextID]!.insert(.tombstone)  // the queue's id, filled below
        let accessID = contexts[contextID]!.insert(.access(hwQueueID: queueID))
        // iommufd_hw_queue_alloc_phys (viommu.c:307-372): whole pages, every one mapped
        // (iommufd_access_pin_pages, device.c:1485-1562).
        let pageMask = pageSize - 1
        let pinned = (cmd.nesting_parent_iova & ~pageMask)...(last | pageMask)
        let ioasID = contexts[contextID]!.hwptPaging(viommu.parentID)!.ioasID
        let table = contexts[contextID]!.ioas(ioasID)!
        var cursor = pinned.lowerBound
        while true {
            guard let area = table.areas(overlapping: cursor...cursor).first else { throw .noSuchFileOrDirectory }
            guard area.readable else { throw .notPermitted }
            guard area.last < pinned.upperBound else { break }
            cursor = area.last + 1
        }
        // The selftest driver's slots (mock_viommu->hw_queue[2]).
        var slots = contexts[contextID]!.hwQueueSlots[cmd.viommu_id, default: [:]]
        guard cmd.index < IOMMU_TEST_HW_QUEUE_MAX else { throw .invalidArgument }
        guard slots[cmd.index] == nil else { throw .fileExists }
        let previous = cmd.index > 0 ? slots[cmd.index - 1] : nil
        if cmd.index > 0 && previous == nil { throw .ioError }
        slots[cmd.index] = queueID
        contexts[contextID]!.hwQueueSlots[cmd.viommu_id] = slots
        contexts[contextID]!.objects[queueID] = .hwQueue(MockHWQueue(viommuID: cmd.viommu_id, index: cmd.index, accessID: accessID,
                                                                     ioasID: ioasID, pinned: pinned, dependsOn: previous))
        cmd.out_hw_queue_id = queueID
        unsafe command.respond(cmd)
    }

    /// The pinned range of any HW queue that overlaps `range` of an IOAS (its areas cannot
    /// be unmapped: `area->num_locks`, io_pagetable.c:772-776).
    func lockedByHWQueue(_ contextID: Int, ioasID: UInt32, _ range: ClosedRange<UInt64>) -> Bool {
        contexts[contextID]!.objects.values.contains { object in
            if case .hwQueue(let queue) = object { return queue.ioasID == ioasID && queue.pinned.overlaps(range) }
            return false
        }
    }

    // MARK: The selftest driver

    /// `IOMMU_TEST_OP_TRIGGER_VEVENT` (`iommufd_test_trigger_vevent`, selftest.c:1783-1809):
    /// the device (`ENOENT`), attached to a nested HWPT of a vIOMMU with a non-zero virtual
    /// id cached (`ENOENT`), a selftest vEVENTQ on that vIOMMU (`EOPNOTSUPP`); the event is
    /// the virtual id (32 bits); a full queue loses it without an error.
    mutating func triggerVEvent(_ contextID: Int, deviceID: UInt32) throws(Errno) {
        guard case .device(let device)? = contexts[contextID]!.objects[deviceID] else { throw .noSuchFileOrDirectory }
        guard let viommuID = device.eventVIOMMU, device.eventVirtID != 0 else { throw .noSuchFileOrDirectory }
        guard let (queueID, found) = contexts[contextID]!.objects.lazy.compactMap({ (id, object) -> (UInt32, MockVEventQueue)? in
            if case .veventq(let queue) = object, queue.viommuID == viommuID, queue.type == IOMMU_VEVENTQ_TYPE_SELFTEST { return (id, queue) }
            return nil
        }).first else { throw .notSupported }
        var queue = found
        var event = iommu_viommu_event_selftest(virt_id: UInt32(truncatingIfNeeded: device.eventVirtID))
        queue.report(unsafe withUnsafeBytes(of: &event) { unsafe Array($0) })
        contexts[contextID]!.objects[queueID] = .veventq(queue)
    }

    /// `IOMMU_TEST_OP_DEV_CHECK_CACHE` (`iommufd_test_dev_check_cache`, selftest.c:1299-1315):
    /// the device by its id (`ENOENT`), then `EINVAL` for a cache id past 3 or another value.
    func checkDeviceCache(_ contextID: Int, deviceID: UInt32, cacheID: UInt32, value: UInt32) throws(Errno) {
        guard case .device(let device)? = contexts[contextID]!.objects[deviceID] else { throw .noSuchFileOrDirectory }
        guard cacheID <= MOCK_DEV_CACHE_ID_MAX, device.caches[Int(cacheID)] == value else { throw .invalidArgument }
    }

    // MARK: The vEVENTQ file

    /// `read(2)` of a vEVENTQ (`iommufd_veventq_fops_read`, eventq.c:311-374): fewer than 8
    /// bytes is `EINVAL`, even on an empty queue; records go whole, back to back, in order;
    /// an event that does not fit is `EINVAL` when it would be the first, else the read stops
    /// before it. An empty queue reads 0 bytes and never blocks.
    mutating func readEventQueue(_ contextID: Int, _ objectID: UInt32, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        let header = MemoryLayout<iommufd_vevent_header>.size
        guard buffer.count >= header else { throw .invalidArgument }
        guard case .veventq(var queue)? = contexts[contextID]?.objects[objectID] else { return 0 }
        var written = 0
        while let record = queue.records.first, buffer.count - written >= header {
            guard buffer.count - written >= header + record.data.count else {
                if written == 0 { throw .invalidArgument }
                break
            }
            unsafe buffer.storeBytes(of: record.flags, toByteOffset: written, as: UInt32.self)
            unsafe buffer.storeBytes(of: record.sequence, toByteOffset: written + 4, as: UInt32.self)
            for (offset, byte) in record.data.enumerated() { unsafe buffer[written + header + offset] = byte }
            written += header + record.data.count
            queue.records.removeFirst()
        }
        contexts[contextID]!.objects[objectID] = .veventq(queue)
        return written
    }

    /// Whether a vEVENTQ or a fault queue has something to read (`poll`'s `EPOLLIN`,
    /// eventq.c:378-394): a record, or a group not read yet.
    func eventQueueReadable(_ contextID: Int, _ objectID: UInt32) -> Bool {
        switch contexts[contextID]?.objects[objectID] {
        case .veventq(let queue)?: !queue.records.isEmpty
        case .fault(let queue)?: !queue.deliver.isEmpty
        default: false
        }
    }

    /// Closing a vEVENTQ's file lets go of the queue (then it can be destroyed) and of the
    /// context it keeps open.
    mutating func closeEventQueue(_ contextID: Int, _ objectID: UInt32) {
        switch contexts[contextID]?.objects[objectID] {
        case .veventq(var queue)?:
            queue.fileOpen = false
            contexts[contextID]!.objects[objectID] = .veventq(queue)
        case .fault(var queue)?:
            // Pending groups stay (eventq.c:396-405 answers nothing).
            queue.fileOpen = false
            contexts[contextID]!.objects[objectID] = .fault(queue)
        default:
            break
        }
        releaseOrphanedContext(contextID)
    }
}
