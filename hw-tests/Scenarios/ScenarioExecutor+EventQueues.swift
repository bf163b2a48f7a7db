import CIOMMUFD
import Glibc
import IOMMUFD
import SystemPackage

// Scenario verbs for the objects on a vIOMMU and for event queues: vdevice, veventq,
// hw_queue, fault, trigger_vevent, trigger_iopf, check_cache, qread, qwrite, qpoll, qpread,
// and change_process.
extension ScenarioExecutor {
    /// `vdevice NAME VIOMMU DEVICE [virt=N]`: `IOMMU_VDEVICE_ALLOC` (virtual id 0 by
    /// default); outputs `id`.
    func allocateVDevice(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 3 else { throw session.fail("vdevice NAME VIOMMU DEVICE [virt=]") }
        let fd = try session.context(step)
        let id = try IOMMUFDIOCTL.vdeviceAlloc(session.seam, fd, viommu: try session.objectID(step.words[1]), device: try session.objectID(step.words[2]),
                                               virtualID: try session.argument(step, "virt", default: 0), fileID: #fileID, line: step.line)
        session.bind(step.words[0], id: id, context: step.arguments["in"] ?? ScenarioSession.defaultContext)
        return Outcome(outputs: ["id": "\(id)"])
    }

    /// `veventq NAME VIOMMU [type=] [depth=] [flags=] [reserved=]`: `IOMMU_VEVENTQ_ALLOC`
    /// (the selftest type and depth 2 by default); binds NAME to the queue and its file;
    /// outputs `id`.
    func allocateVEventQueue(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("veventq NAME VIOMMU [type=] [depth=]") }
        let fd = try session.context(step)
        let answer = try IOMMUFDIOCTL.veventqAlloc(
            session.seam, fd, viommu: try session.objectID(step.words[1]),
            type: UInt32(truncatingIfNeeded: try session.argument(step, "type", default: UInt64(IOMMU_VEVENTQ_TYPE_SELFTEST))),
            depth: UInt32(truncatingIfNeeded: try session.argument(step, "depth", default: 2)),
            flags: UInt32(truncatingIfNeeded: try session.argument(step, "flags", default: 0)),
            reserved: UInt32(truncatingIfNeeded: try session.argument(step, "reserved", default: 0)), fileID: #fileID, line: step.line)
        session.bind(step.words[0], id: answer.id, context: step.arguments["in"] ?? ScenarioSession.defaultContext)
        session.eventQueues[step.words[0]] = answer.fd
        return Outcome(outputs: ["id": "\(answer.id)"])
    }

    /// `fault NAME [flags=]`: `IOMMU_FAULT_QUEUE_ALLOC`; binds NAME to the queue and its
    /// file; outputs `id` and `cloexec` (whether the file is close-on-exec).
    func allocateFaultQueue(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 1 else { throw session.fail("fault NAME [flags=]") }
        let fd = try session.context(step)
        let answer = try IOMMUFDIOCTL.faultQueueAlloc(session.seam, fd, flags: UInt32(truncatingIfNeeded: try session.argument(step, "flags", default: 0)),
                                                      fileID: #fileID, line: step.line)
        session.bind(step.words[0], id: answer.id, context: step.arguments["in"] ?? ScenarioSession.defaultContext)
        session.eventQueues[step.words[0]] = answer.fd
        return Outcome(outputs: ["id": "\(answer.id)"])
    }

    /// `hw_queue NAME VIOMMU index= iova= length= [type=] [flags=]`: `IOMMU_HW_QUEUE_ALLOC`
    /// (the selftest type by default); outputs `id`.
    func allocateHWQueue(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("hw_queue NAME VIOMMU index= iova= length=") }
        let fd = try session.context(step)
        let id = try IOMMUFDIOCTL.hwQueueAlloc(
            session.seam, fd, viommu: try session.objectID(step.words[1]),
            type: UInt32(truncatingIfNeeded: try session.argument(step, "type", default: UInt64(IOMMU_HW_QUEUE_TYPE_SELFTEST))),
            index: UInt32(truncatingIfNeeded: try session.argument(step, "index", default: 0)), iova: try session.argument(step, "iova"),
            length: try session.argument(step, "length"), flags: UInt32(truncatingIfNeeded: try session.argument(step, "flags", default: 0)),
            fileID: #fileID, line: step.line)
        session.bind(step.words[0], id: id, context: step.arguments["in"] ?? ScenarioSession.defaultContext)
        return Outcome(outputs: ["id": "\(id)"])
    }

    /// `change_process [reserved=N]`: `IOMMU_IOAS_CHANGE_PROCESS` in the running process.
    func changeProcess(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        let fd = try session.context(step)
        try IOMMUFDIOCTL.changeProcess(session.seam, fd, reserved: UInt32(truncatingIfNeeded: try session.argument(step, "reserved", default: 0)),
                                       fileID: #fileID, line: step.line)
        return Outcome()
    }

    /// `trigger_vevent DEVICE [times=N]`: `IOMMU_TEST_OP_TRIGGER_VEVENT` N times (1).
    func triggerVEvent(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 1 else { throw session.fail("trigger_vevent DEVICE") }
        let fd = try session.context(step)
        let device = try session.objectID(step.words[0])
        for _ in 0..<(try session.argument(step, "times", default: 1)) {
            try SelftestIOCTL.triggerVEvent(session.seam, fd, device: device, fileID: #fileID, line: step.line)
        }
        return Outcome()
    }

    /// `trigger_iopf DEVICE [pasid=] [grpid=] [perm=] [addr=] [times=N]`:
    /// `IOMMU_TEST_OP_TRIGGER_IOPF` (the kernel selftest's group 2, read+write, 0xdeadbeaf).
    func triggerIOPF(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 1 else { throw session.fail("trigger_iopf DEVICE [pasid=]") }
        let fd = try session.context(step)
        let device = try session.objectID(step.words[0])
        for _ in 0..<(try session.argument(step, "times", default: 1)) {
            try SelftestIOCTL.triggerIOPF(session.seam, fd, device: device, pasid: UInt32(truncatingIfNeeded: try session.argument(step, "pasid", default: 0)),
                                          group: UInt32(truncatingIfNeeded: try session.argument(step, "grpid", default: 2)),
                                          permissions: UInt32(truncatingIfNeeded: try session.argument(step, "perm", default: 3)),
                                          address: try session.argument(step, "addr", default: 0xdeadbeaf), fileID: #fileID, line: step.line)
        }
        return Outcome()
    }

    /// `check_cache DEVICE ID VALUE`: `IOMMU_TEST_OP_DEV_CHECK_CACHE`.
    func checkDeviceCache(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 3 else { throw session.fail("check_cache DEVICE ID VALUE") }
        let fd = try session.context(step)
        try SelftestIOCTL.checkDeviceCache(session.seam, fd, device: try session.objectID(step.words[0]),
                                           cacheID: UInt32(truncatingIfNeeded: try session.number(step.words[1])),
                                           value: UInt32(truncatingIfNeeded: try session.number(step.words[2])), fileID: #fileID, line: step.line)
        return Outcome()
    }

    /// The descriptor of a named event queue.
    func eventQueue(_ step: Step, _ session: ScenarioSession) throws -> Int32 {
        guard let name = step.words.first, let fd = session.eventQueues[name] else { throw session.fail("\(step.verb) QUEUE: no event queue of that name") }
        return fd
    }

    /// `qread QUEUE count=N [as=fault|vevent]`: one `read(2)` of N bytes. Outputs `bytes`,
    /// and the records: for a vEVENTQ (the default) `records`, each `flags:sequence[:virt_id]`;
    /// for a fault queue (`as=fault`) `records`, each
    /// `flags:dev_id:pasid:grpid:perm:addr:length:cookie`, and `cookie`, the first one's.
    func readEventQueue(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        let fd = try eventQueue(step, session)
        let count = Int(try session.argument(step, "count"))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 8)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        let bytes = try session.system.read(fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<count]))
        var records: [String] = []
        var outputs = ["bytes": "\(bytes)"]
        if step.arguments["as"] == "fault" {
            let size = MemoryLayout<iommu_hwpt_pgfault>.size
            for offset in stride(from: 0, to: bytes - size + 1, by: size) {
                let record = buffer.loadUnaligned(fromByteOffset: offset, as: iommu_hwpt_pgfault.self)
                records.append("\(record.flags):\(record.dev_id):\(record.pasid):\(record.grpid):\(record.perm):"
                               + "\(ScenarioSession.hex(record.addr)):\(record.length):\(record.cookie)")
                if offset == 0 { outputs["cookie"] = "\(record.cookie)" }
            }
        } else {
            var offset = 0
            while offset + 8 <= bytes {
                let flags = buffer.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
                let sequence = buffer.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
                if flags & IOMMU_VEVENTQ_FLAG_LOST_EVENTS != 0 || offset + 12 > bytes {
                    records.append("\(flags):\(sequence)")
                    offset += 8
                } else {
                    records.append("\(flags):\(sequence):\(ScenarioSession.hex(UInt64(buffer.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self))))")
                    offset += 12
                }
            }
        }
        outputs["records"] = records.isEmpty ? "none" : records.joined(separator: ",")
        return Outcome(outputs: outputs)
    }

    /// `qwrite QUEUE COOKIE:CODE ... | qwrite QUEUE bytes=N`: one `write(2)` of the page
    /// responses given (or of N zero bytes); outputs `bytes`.
    func writeEventQueue(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        let fd = try eventQueue(step, session)
        var responses: [iommu_hwpt_page_response] = []
        for word in step.words.dropFirst() {
            let parts = word.split(separator: ":")
            guard parts.count == 2 else { throw session.fail("qwrite QUEUE COOKIE:CODE ...") }
            responses.append(iommu_hwpt_page_response(cookie: UInt32(truncatingIfNeeded: try session.number(String(parts[0]))),
                                                      code: UInt32(truncatingIfNeeded: try session.number(String(parts[1])))))
        }
        let bytes: Int
        if let count = step.arguments["bytes"] {
            let raw = [UInt8](repeating: 0, count: Int(try session.number(count)))
            bytes = try raw.withUnsafeBytes { try session.system.write(fd, from: $0) }
        } else {
            bytes = try responses.withUnsafeBytes { try session.system.write(fd, from: $0) }
        }
        return Outcome(outputs: ["bytes": "\(bytes)"])
    }

    /// `qpoll QUEUE`: whether the queue's file is readable now; outputs `in` (yes or no).
    func pollEventQueue(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        let fd = try eventQueue(step, session)
        let ready = try session.system.waitReadable([fd], timeoutNanoseconds: 0)
        return Outcome(outputs: ["in": ready.isEmpty ? "no" : "yes"])
    }

    /// `qpread QUEUE count=N`: `pread(2)` at offset 0 (the queue files cannot seek: ESPIPE).
    func preadEventQueue(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        let fd = try eventQueue(step, session)
        let count = Int(try session.argument(step, "count", default: 40))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 8)
        defer { buffer.deallocate() }
        let bytes = try session.system.pread(fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<count]), offset: 0)
        return Outcome(outputs: ["bytes": "\(bytes)"])
    }
}
