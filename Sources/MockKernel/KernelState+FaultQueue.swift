import CIOMMUFD
import IOMMUFDSystem
import SystemPackage

// IO page fault queues (IOMMU_FAULT_QUEUE_ALLOC and the file, drivers/iommu/iommufd/
// eventq.c), how faults reach them (drivers/iommu/io-pgfault.c) and the selftest driver's
// IOMMU_TEST_OP_TRIGGER_IOPF (selftest.c:1750-1781).
extension KernelState {
    /// `IOMMU_FAULT_QUEUE_ALLOC` (`iommufd_fault_alloc`, eventq.c:443-479): flags must be 0
    /// (`EOPNOTSUPP`); returns the object and a close-on-exec descriptor, the lowest free.
    mutating func faultQueueAlloc(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        var cmd = unsafe command.load(iommu_fault_alloc.self)
        guard cmd.flags == 0 else { throw .notSupported }
        let id = contexts[contextID]!.insert(.fault(MockFaultQueue()))
        let fd = lowestFreeDescriptor()
        descriptors[fd] = .eventQueue(contextID: contextID, objectID: id)
        cmd.out_fault_id = id
        cmd.out_fault_fd = UInt32(bitPattern: fd)
        unsafe command.respond(cmd)
    }

    /// The last step of `IOMMU_HWPT_ALLOC` with `IOMMU_HWPT_FAULT_ID_VALID`
    /// (hw_pagetable.c:424-435): after the domain exists, the fault queue (`ENOENT` for a
    /// missing id or any other object; the new HWPT is dropped and its id reused), which the
    /// HWPT then holds.
    mutating func bindFaultQueue(_ contextID: Int, hwptID: UInt32, faultID: UInt32) throws(Errno) {
        guard case .fault? = contexts[contextID]!.objects[faultID] else { throw .noSuchFileOrDirectory }
        switch contexts[contextID]!.objects[hwptID] {
        case .hwptPaging(var hwpt)?:
            hwpt.faultID = faultID
            contexts[contextID]!.objects[hwptID] = .hwptPaging(hwpt)
        case .hwptNested(var nested)?:
            nested.faultID = faultID
            contexts[contextID]!.objects[hwptID] = .hwptNested(nested)
        default:
            break
        }
    }

    /// Whether anything holds a fault queue: its open file or a HWPT allocated with it
    /// (`IOMMU_DESTROY` is `EBUSY` then, main.c:273-276).
    func faultQueueHeld(_ contextID: Int, _ id: UInt32, _ queue: MockFaultQueue) -> Bool {
        queue.fileOpen || contexts[contextID]!.objects.keys.contains { contexts[contextID]!.faultID(ofHWPT: $0) == id }
    }

    /// `iommufd_auto_response_faults` (eventq.c:19-54), run when `hwptID` stops serving a
    /// device's attachment (RID when `pasid` is 0) through a detach or a replace
    /// (device.c:629, 667): its groups of that attachment, read or not, are answered
    /// INVALID and gone.
    mutating func answerPendingFaults(_ contextID: Int, hwptID: UInt32, deviceID: UInt32, pasid: UInt32) {
        guard let faultID = contexts[contextID]!.faultID(ofHWPT: hwptID), case .fault(var queue)? = contexts[contextID]!.objects[faultID] else { return }
        queue.deliver.removeAll { $0.deviceID == deviceID && $0.handlePASID == pasid }
        queue.responses = queue.responses.filter { !($0.value.deviceID == deviceID && $0.value.handlePASID == pasid) }
        contexts[contextID]!.objects[faultID] = .fault(queue)
    }

    /// `IOMMU_TEST_OP_TRIGGER_IOPF`: the device (`ENOENT`; `EINVAL` when it is no mock
    /// device), then `iommu_report_device_fault` (io-pgfault.c:118-156, 214-283), whose
    /// answer the selftest ignores: a PASID's fault goes to that PASID's HWPT, or without an
    /// attachment there to the RID's when that is nested (the mock driver keeps the PASID
    /// table in user memory); PASID 0 to the RID's HWPT. A HWPT without a fault queue, or
    /// no HWPT, drops the fault. The group is one record with `LAST_PAGE` (and
    /// `PASID_VALID` for a PASID), readable at once.
    mutating func triggerIOPF(_ contextID: Int, _ trigger: iommu_test_cmd) throws(Errno) {
        let fields = trigger.trigger_iopf
        guard case .device(let device)? = contexts[contextID]!.objects[fields.dev_id] else { throw .noSuchFileOrDirectory }
        guard device.iommu == .selftest else { throw .invalidArgument }
        var handle: (hwptID: UInt32, pasid: UInt32)?
        if fields.pasid != 0 {
            if let hwptID = device.pasids[fields.pasid] {
                handle = (hwptID, fields.pasid)
            } else if let rid = device.attachedHWPT, contexts[contextID]!.hwptNested(rid) != nil {
                handle = (rid, 0)
            }
        } else if let rid = device.attachedHWPT {
            handle = (rid, 0)
        }
        guard let handle, let faultID = contexts[contextID]!.faultID(ofHWPT: handle.hwptID),
              case .fault(var queue)? = contexts[contextID]!.objects[faultID] else { return }
        var record = iommu_hwpt_pgfault()
        record.flags = IOMMU_PGFAULT_FLAGS_LAST_PAGE | (fields.pasid != 0 ? IOMMU_PGFAULT_FLAGS_PASID_VALID : 0)
        record.dev_id = fields.dev_id
        record.pasid = fields.pasid
        record.grpid = fields.grpid
        record.perm = fields.perm
        record.addr = fields.addr
        queue.deliver.append(MockFaultGroup(deviceID: fields.dev_id, handlePASID: handle.pasid, record: record))
        contexts[contextID]!.objects[faultID] = .fault(queue)
    }

    /// A page request from a function's faulting DMA (PRI): queued on the fault queue of
    /// the HWPT it is attached to, if that has one; dropped otherwise.
    mutating func queuePageRequest(_ contextID: Int, hwptID: UInt32, deviceID: UInt32, iova: UInt64, write: Bool) {
        guard let faultID = contexts[contextID]!.faultID(ofHWPT: hwptID), case .fault(var queue)? = contexts[contextID]!.objects[faultID] else { return }
        var record = iommu_hwpt_pgfault()
        record.flags = IOMMU_PGFAULT_FLAGS_LAST_PAGE
        record.dev_id = deviceID
        record.grpid = UInt32(truncatingIfNeeded: queue.deliver.count + queue.responses.count + 1)
        record.perm = write ? IOMMU_PGFAULT_PERM_WRITE : IOMMU_PGFAULT_PERM_READ
        record.addr = iova & ~(pageSize - 1)
        queue.deliver.append(MockFaultGroup(deviceID: deviceID, handlePASID: 0, record: record))
        contexts[contextID]!.objects[faultID] = .fault(queue)
    }

    // MARK: The fault queue's file

    /// `read(2)` of a fault queue (`iommufd_fault_fops_read`, eventq.c:124-180): a count that
    /// is not a multiple of the 40-byte record is `ESPIPE`; whole groups go out in order,
    /// each given the lowest free cookie and kept until answered; a first group that does
    /// not fit is `EINVAL`, a later one ends the read. Empty: 0 bytes, never a wait.
    mutating func readFaultQueue(_ contextID: Int, _ objectID: UInt32, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        let size = MemoryLayout<iommu_hwpt_pgfault>.size
        guard buffer.count % size == 0 else { throw .illegalSeek }
        guard case .fault(var queue)? = contexts[contextID]?.objects[objectID] else { return 0 }
        var written = 0
        while var group = queue.deliver.first {
            guard buffer.count - written >= size else {
                if written == 0 { throw .invalidArgument }
                break
            }
            group.record.cookie = queue.nextCookie
            unsafe buffer.storeBytes(of: group.record, toByteOffset: written, as: iommu_hwpt_pgfault.self)
            queue.responses[group.record.cookie] = group
            queue.deliver.removeFirst()
            written += size
        }
        contexts[contextID]!.objects[objectID] = .fault(queue)
        return written
    }

    /// `write(2)` of a fault queue (`iommufd_fault_fops_write`, eventq.c:182-226): a count
    /// that is not a multiple of the 8-byte response is `ESPIPE`; response by response, a
    /// code other than SUCCESS or INVALID is `EINVAL` (before the cookie is looked at), so is
    /// a cookie no read group has; the bytes of the answered ones are returned when any were.
    mutating func writeFaultQueue(_ contextID: Int, _ objectID: UInt32, from buffer: UnsafeRawBufferPointer) throws(Errno) -> Int {
        let size = MemoryLayout<iommu_hwpt_page_response>.size
        guard buffer.count % size == 0 else { throw .illegalSeek }
        guard case .fault(var queue)? = contexts[contextID]?.objects[objectID] else { return 0 }
        var consumed = 0
        var failure: Errno?
        while consumed < buffer.count {
            let response = unsafe buffer.loadUnaligned(fromByteOffset: consumed, as: iommu_hwpt_page_response.self)
            guard response.code == IOMMUFD_PAGE_RESP_SUCCESS || response.code == IOMMUFD_PAGE_RESP_INVALID else {
                failure = .invalidArgument
                break
            }
            guard queue.responses.removeValue(forKey: response.cookie) != nil else {
                failure = .invalidArgument
                break
            }
            consumed += size
        }
        contexts[contextID]!.objects[objectID] = .fault(queue)
        if consumed == 0, let failure { throw failure }
        return consumed
    }
}
