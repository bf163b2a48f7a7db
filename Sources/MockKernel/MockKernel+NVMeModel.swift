import Synchronization

// An NVMe controller played on a mock function's registers (NVMe Base Specification 2.0, as
// QEMU 7.2's nvme answers the parts a driver uses): CAP/VS/CC/CSTS, the admin queue, Identify,
// I/O queue creation and deletion, and Read/Write/Flush on one namespace in memory, with
// PRP entries and lists walked by DMA through the function's IOMMU, completions posted with
// the phase bit. Enough for a user-space NVMe driver to run unchanged in CI.
/// The test's handle on an NVMe controller model (``MockKernel/installNVMeModel(_:blockCount:blockSize:maximumDataTransferShift:queueEntries:)``):
/// faults to inject into the I/O path, as a driver's status and timeout paths need them.
public final class MockNVMeController: Sendable {
    fileprivate let model: MockKernel.NVMeModel

    fileprivate init(_ model: MockKernel.NVMeModel) { self.model = model }

    /// The next `count` I/O commands complete with status code `code` of type `codeType`
    /// (media errors are type 2, an Unrecovered Read Error is 2/0x81) instead of running.
    public func failNextIO(count: Int = 1, codeType: UInt8, code: UInt8) {
        model.state.withLock { $0.injected += Array(repeating: UInt16(codeType) << 8 | UInt16(code), count: count) }
    }

    /// The next `count` I/O commands are taken and never completed: the controller hangs
    /// on them, so the driver's wait times out.
    public func dropNextIO(count: Int = 1) {
        model.state.withLock { $0.dropped += count }
    }

    /// The namespace's bytes as the controller holds them.
    public var namespaceBytes: [UInt8] { model.state.withLock { $0.blocks } }
}

extension MockKernel {
    /// The model's state (queues, the namespace's blocks).
    fileprivate final class NVMeModel: Sendable {
        struct SubmissionQueue {
            var base: UInt64; var depth: Int; var head: Int; var completionQueue: UInt16
            /// The tail the host last wrote to the queue's doorbell.
            var tail = 0
        }
        struct CompletionQueue {
            var base: UInt64; var depth: Int; var tail: Int; var phase: UInt16
            /// The MSI-X vector a posted completion signals (IEN set at creation), if any.
            var vector: Int? = nil
            /// The head the host last wrote to the queue's doorbell: the controller posts
            /// nothing while the queue is full ((tail + 1) % depth == head).
            var head = 0
            var isFull: Bool { (tail + 1) % depth == head }
        }
        struct State {
            var submissions: [UInt16: SubmissionQueue] = [:]
            var completions: [UInt16: CompletionQueue] = [:]
            var blocks: [UInt8]
            /// Statuses the next I/O commands complete with, in order.
            var injected: [UInt16] = []
            /// How many of the next I/O commands are swallowed without a completion.
            var dropped = 0
            /// Whether an I/O queue was created since the controller was enabled (QEMU's
            /// `qs_created`: Set Features Number of Queues is refused after).
            var queuesCreated = false
        }
        /// I/O queue pairs the controller has (QEMU's `max_ioqpairs`, 64 by default).
        static let ioQueuePairs = 64
        let state: Mutex<State>
        let blockSize: Int
        let blockCount: UInt64
        let maximumDataTransferShift: UInt8
        let queueEntries: Int

        init(blockCount: UInt64, blockSize: Int, maximumDataTransferShift: UInt8, queueEntries: Int) {
            state = Mutex(State(blocks: [UInt8](repeating: 0, count: Int(blockCount) * blockSize)))
            self.blockSize = blockSize
            self.blockCount = blockCount
            self.maximumDataTransferShift = maximumDataTransferShift
            self.queueEntries = queueEntries
        }
    }

    /// Status codes (SCT 0 unless said).
    private enum NVMeStatusCode {
        static let success: UInt16 = 0, invalidOpcode: UInt16 = 0x01, invalidField: UInt16 = 0x02, dataTransferError: UInt16 = 0x04
        static let invalidNamespace: UInt16 = 0x0b, lbaOutOfRange: UInt16 = 0x80
        /// Invalid Field with DNR, as QEMU answers an Abort for a queue it does not have.
        static let invalidFieldDoNotRetry: UInt16 = 0x4000 | 0x02
        /// Command Sequence Error with DNR, as QEMU answers a late Set Features Number of Queues.
        static let commandSequenceError: UInt16 = 0x4000 | 0x0c
        /// SCT 1: Completion Queue Invalid, Invalid Queue Identifier, Invalid Queue Size.
        static let completionQueueInvalid: UInt16 = 1 << 8 | 0x00, invalidQueueIdentifier: UInt16 = 1 << 8 | 0x01, invalidQueueSize: UInt16 = 1 << 8 | 0x02
        /// SCT 1: Invalid Interrupt Vector, with DNR (QEMU 7.2's nvme_create_cq, hw/nvme/ctrl.c).
        static let invalidInterruptVector: UInt16 = 0x4000 | 1 << 8 | 0x08
    }

    /// Makes the function at `address` an NVMe controller with one namespace (NSID 1) of
    /// `blockCount` blocks of `blockSize` bytes, `MDTS` `maximumDataTransferShift` (in 4 KiB
    /// pages, as a power of two) and queues of up to `queueEntries` entries. Registers: CAP
    /// (MQES, DSTRD 0, NVM command set, 4 KiB pages), VS 1.4, CC.EN brings CSTS.RDY up (with
    /// the admin queue from AQA/ASQ/ACQ) and down (every queue gone), CC.SHN completes a
    /// shutdown at once. A submission doorbell runs the new entries in order and posts their
    /// completions; commands: Identify (CNS 0, 1 and 2), Abort (never aborts, as QEMU 7.2),
    /// Set Features Number of Queues (64
    /// pairs granted, refused with Command Sequence Error once a queue exists, as QEMU 7.2),
    /// Create/Delete I/O SQ and CQ (queue ids 1 to 64; a CQ with IEN signals its MSI-X vector,
    /// below 65, after each completion it posts; nothing is posted into a full CQ until its
    /// head doorbell makes room), Read, Write, Flush, Write Zeroes. Errors as a controller reports them: an unknown opcode, an invalid
    /// namespace, LBAs out of range, more than MDTS, a queue id or size refused, a data
    /// transfer the IOMMU blocks.
    @discardableResult
    public func installNVMeModel(_ address: String, blockCount: UInt64 = 2048, blockSize: Int = 512,
                                 maximumDataTransferShift: UInt8 = 5, queueEntries: Int = 64) -> MockNVMeController {
        let model = NVMeModel(blockCount: blockCount, blockSize: blockSize, maximumDataTransferShift: maximumDataTransferShift, queueEntries: queueEntries)
        let capabilities = UInt64(queueEntries - 1) | 1 << 16 | 0x0f << 24 | 1 << 37 | 4 << 52
        onRegisterRead(address, bar: 0, offsets: 0x00..<0x08) { _, access in
            access.width == 8 ? capabilities : UInt64(truncatingIfNeeded: capabilities >> (8 * (access.offset & 4)))
        }
        onRegisterRead(address, bar: 0, at: 0x08) { _, _ in 0x0001_0400 }
        onRegisterWrite(address, bar: 0, at: 0x14) { kernel, access in
            guard let bar = unsafe kernel.barMemory(address, bar: 0) else { return }
            let configuration = UInt32(truncatingIfNeeded: access.value)
            var status = unsafe bar.loadUnaligned(fromByteOffset: 0x1c, as: UInt32.self)
            if configuration & 1 != 0 && status & 1 == 0 {
                let attributes = unsafe bar.loadUnaligned(fromByteOffset: 0x24, as: UInt32.self)
                let submission = unsafe bar.loadUnaligned(fromByteOffset: 0x28, as: UInt64.self)
                let completion = unsafe bar.loadUnaligned(fromByteOffset: 0x30, as: UInt64.self)
                model.state.withLock { state in
                    state.submissions = [0: .init(base: submission, depth: Int(attributes & 0xfff) + 1, head: 0, completionQueue: 0)]
                    state.completions = [0: .init(base: completion, depth: Int((attributes >> 16) & 0xfff) + 1, tail: 0, phase: 1)]
                }
                status |= 1
            } else if configuration & 1 == 0 {
                model.state.withLock { $0.submissions = [:]; $0.completions = [:]; $0.queuesCreated = false }
                status &= ~UInt32(0xd)
            }
            if (configuration >> 14) & 3 != 0 { status = status & ~UInt32(0xc) | 2 << 2 }
            unsafe bar.storeBytes(of: status, toByteOffset: 0x1c, as: UInt32.self)
        }
        onRegisterWrite(address, bar: 0, offsets: 0x1000..<0x2000) { kernel, access in
            let index = (access.offset - 0x1000) / 4
            let queue = UInt16(index / 2)
            if index % 2 == 0 {
                model.state.withLock { $0.submissions[queue]?.tail = Int(access.value) }
                Self.runSubmissions(kernel, address, model, queue: queue)
            } else {
                // A completion queue's new head makes room: the submission queues that post
                // to it go on. QEMU 7.2's nvme runs their commands meanwhile and holds the
                // completions until the head doorbell (hw/nvme/ctrl.c nvme_post_cqes); the
                // model leaves the entries in the submission queue instead. Either way nothing
                // is posted into a full queue, which is what a driver sees.
                let waiting = model.state.withLock { state -> [UInt16] in
                    state.completions[queue]?.head = Int(access.value)
                    return state.submissions.filter { $0.value.completionQueue == queue }.map(\.key).sorted()
                }
                for submission in waiting { Self.runSubmissions(kernel, address, model, queue: submission) }
            }
        }
        return MockNVMeController(model)
    }

    /// Runs a submission queue's entries up to the tail its doorbell was given, posting each
    /// completion; stops while its completion queue is full.
    fileprivate static func runSubmissions(_ kernel: MockKernel, _ address: String, _ model: NVMeModel, queue: UInt16) {
        while true {
            guard let (entryAddress, submission) = model.state.withLock({ state -> (UInt64, NVMeModel.SubmissionQueue)? in
                guard let submission = state.submissions[queue], submission.head != submission.tail % submission.depth else { return nil }
                if let completion = state.completions[submission.completionQueue], completion.isFull { return nil }
                return (submission.base + UInt64(submission.head * 64), submission)
            }) else { return }
            let command = kernel.pciDeviceRead(address, iova: entryAddress, length: 64) ?? [UInt8](repeating: 0, count: 64)
            func dword(_ offset: Int) -> UInt32 { command[offset..<(offset + 4)].reversed().reduce(0) { $0 << 8 | UInt32($1) } }
            func qword(_ offset: Int) -> UInt64 { UInt64(dword(offset)) | UInt64(dword(offset + 4)) << 32 }
            // Faults the test injected into the I/O path: a status instead of the command, or
            // no completion at all.
            let fault: (drop: Bool, status: UInt16?) = queue == 0 ? (false, nil) : model.state.withLock { state in
                if state.dropped > 0 { state.dropped -= 1; return (true, nil) }
                return (false, state.injected.isEmpty ? nil : state.injected.removeFirst())
            }
            if fault.drop {
                model.state.withLock { $0.submissions[queue]?.head = (submission.head + 1) % submission.depth }
                continue
            }
            let status = fault.status ?? (queue == 0 ? runAdmin(kernel, address, model, dword, qword) : runIO(kernel, address, model, dword, qword))
            let head = (submission.head + 1) % submission.depth
            let posted: (UInt64, UInt16, Int?)? = model.state.withLock { state in
                state.submissions[queue]?.head = head
                guard var completion = state.completions[submission.completionQueue] else { return nil }
                let slot = completion.base + UInt64(completion.tail * 16)
                let phase = completion.phase
                completion.tail += 1
                if completion.tail == completion.depth { completion.tail = 0; completion.phase ^= 1 }
                state.completions[submission.completionQueue] = completion
                return (slot, phase, completion.vector)
            }
            guard let (slot, phase, vector) = posted else { continue }
            let commandID = UInt16(truncatingIfNeeded: dword(0) >> 16)
            let statusField = (status & 0xff) << 1 | (status >> 8) << 9 | phase
            var entry = [UInt8](repeating: 0, count: 16)
            // DW0 of Set Features Number of Queues: the pairs allocated, 0-based (NSQA, NCQA);
            // of Abort: 1, not aborted (QEMU sets it whatever the status).
            if queue == 0, status == NVMeStatusCode.success, dword(0) & 0xff == 0x09 {
                let granted = UInt32(NVMeModel.ioQueuePairs - 1) | UInt32(NVMeModel.ioQueuePairs - 1) << 16
                for index in 0..<4 { entry[index] = UInt8(truncatingIfNeeded: granted >> (8 * UInt32(index))) }
            }
            if queue == 0, dword(0) & 0xff == 0x08 { entry[0] = 1 }
            entry[8] = UInt8(truncatingIfNeeded: head); entry[9] = UInt8(truncatingIfNeeded: head >> 8)
            entry[10] = UInt8(truncatingIfNeeded: queue); entry[11] = UInt8(truncatingIfNeeded: queue >> 8)
            entry[12] = UInt8(truncatingIfNeeded: commandID); entry[13] = UInt8(truncatingIfNeeded: commandID >> 8)
            entry[14] = UInt8(truncatingIfNeeded: statusField); entry[15] = UInt8(truncatingIfNeeded: statusField >> 8)
            _ = kernel.pciDeviceWrite(address, iova: slot, bytes: entry)
            // The completion queue's MSI-X vector, after the entry is in memory.
            if let vector { kernel.raiseInterrupt(address, vector: vector) }
        }
    }

    fileprivate static func runAdmin(_ kernel: MockKernel, _ address: String, _ model: NVMeModel,
                                 _ dword: (Int) -> UInt32, _ qword: (Int) -> UInt64) -> UInt16 {
        let opcode = UInt8(truncatingIfNeeded: dword(0)), cdw10 = dword(40), cdw11 = dword(44)
        let queueID = UInt16(truncatingIfNeeded: cdw10), depth = Int(cdw10 >> 16) + 1
        switch opcode {
        case 0x06:  // Identify
            var data = [UInt8](repeating: 0, count: 4096)
            func put(_ text: String, at offset: Int, width: Int) {
                for (index, byte) in (Array(text.utf8) + [UInt8](repeating: 0x20, count: width)).prefix(width).enumerated() { data[offset + index] = byte }
            }
            switch cdw10 & 0xff {
            case 1:
                data[0] = 0x36; data[1] = 0x1b  // QEMU's vendor id, 1b36
                put("deadbeef", at: 4, width: 20); put("QEMU NVMe Ctrl", at: 24, width: 40); put("7.2.0", at: 64, width: 8)
                data[77] = model.maximumDataTransferShift
                data[516] = 1  // NN
            case 2:  // the active namespace list: NSID 1 when the list starts below it
                if dword(4) < 1 { data[0] = 1 }
            case 0:
                guard dword(4) == 1 else { return NVMeStatusCode.invalidNamespace }
                for index in 0..<8 {
                    data[index] = UInt8(truncatingIfNeeded: model.blockCount >> (8 * UInt64(index)))
                    data[8 + index] = data[index]; data[16 + index] = data[index]
                }
                data[130] = UInt8(model.blockSize.trailingZeroBitCount)  // LBAF0.LBADS
            default:
                return NVMeStatusCode.invalidField
            }
            return kernel.pciDeviceWrite(address, iova: qword(24), bytes: data) ? NVMeStatusCode.success : NVMeStatusCode.dataTransferError
        case 0x08:  // Abort
            // QEMU 7.2 (hw/nvme/ctrl.c, nvme_abort): Invalid Field for a submission queue it
            // does not have; otherwise success with DW0 bit 0 set: the command was not aborted.
            return model.state.withLock { state in
                state.submissions[UInt16(truncatingIfNeeded: cdw10)] != nil ? NVMeStatusCode.success : NVMeStatusCode.invalidFieldDoNotRetry
            }
        case 0x09:  // Set Features
            // QEMU 7.2 (hw/nvme/ctrl.c, nvme_set_feature): Number of Queues (FID 07h) is
            // refused once a queue exists, and grants max_ioqpairs whatever is asked.
            guard cdw10 & 0xff == 0x07 else { return NVMeStatusCode.invalidField }
            return model.state.withLock { state in
                guard !state.queuesCreated else { return NVMeStatusCode.commandSequenceError }
                guard cdw11 & 0xffff != 0xffff, cdw11 >> 16 != 0xffff else { return NVMeStatusCode.invalidField }
                return NVMeStatusCode.success
            }
        case 0x05:  // Create I/O Completion Queue
            guard queueID != 0, Int(queueID) <= NVMeModel.ioQueuePairs else { return NVMeStatusCode.invalidQueueIdentifier }
            guard depth >= 2, depth <= model.queueEntries else { return NVMeStatusCode.invalidQueueSize }
            // IEN (bit 1) with IV (bits 31:16) below the function's 65 MSI-X vectors (QEMU 7.2's
            // nvme_create_cq: Invalid Interrupt Vector otherwise).
            let vector: Int? = cdw11 & 2 != 0 ? Int(cdw11 >> 16) : nil
            if let vector, vector >= 65 { return NVMeStatusCode.invalidInterruptVector }
            return model.state.withLock { state in
                guard state.completions[queueID] == nil else { return NVMeStatusCode.invalidQueueIdentifier }
                state.completions[queueID] = .init(base: qword(24), depth: depth, tail: 0, phase: 1, vector: vector)
                state.queuesCreated = true
                return NVMeStatusCode.success
            }
        case 0x01:  // Create I/O Submission Queue
            guard queueID != 0, Int(queueID) <= NVMeModel.ioQueuePairs else { return NVMeStatusCode.invalidQueueIdentifier }
            guard depth >= 2, depth <= model.queueEntries else { return NVMeStatusCode.invalidQueueSize }
            return model.state.withLock { state in
                guard state.submissions[queueID] == nil else { return NVMeStatusCode.invalidQueueIdentifier }
                let completionQueue = UInt16(truncatingIfNeeded: cdw11 >> 16)
                guard completionQueue != 0, state.completions[completionQueue] != nil else { return NVMeStatusCode.completionQueueInvalid }
                state.submissions[queueID] = .init(base: qword(24), depth: depth, head: 0, completionQueue: completionQueue)
                state.queuesCreated = true
                return NVMeStatusCode.success
            }
        case 0x00:  // Delete I/O Submission Queue
            return model.state.withLock { state in
                queueID != 0 && state.submissions.removeValue(forKey: queueID) != nil ? NVMeStatusCode.success : NVMeStatusCode.invalidQueueIdentifier
            }
        case 0x04:  // Delete I/O Completion Queue
            return model.state.withLock { state in
                queueID != 0 && state.completions.removeValue(forKey: queueID) != nil ? NVMeStatusCode.success : NVMeStatusCode.invalidQueueIdentifier
            }
        default:
            return NVMeStatusCode.invalidOpcode
        }
    }

    fileprivate static func runIO(_ kernel: MockKernel, _ address: String, _ model: NVMeModel,
                              _ dword: (Int) -> UInt32, _ qword: (Int) -> UInt64) -> UInt16 {
        let opcode = UInt8(truncatingIfNeeded: dword(0))
        guard [0x00, 0x01, 0x02, 0x08].contains(opcode) else { return NVMeStatusCode.invalidOpcode }
        guard dword(4) == 1 else { return NVMeStatusCode.invalidNamespace }
        if opcode == 0x00 { return NVMeStatusCode.success }  // Flush
        let lba = qword(40), blocks = Int(dword(48) & 0xffff) + 1
        guard lba < model.blockCount, UInt64(blocks) <= model.blockCount - lba else { return NVMeStatusCode.lbaOutOfRange }
        if opcode == 0x08 {  // Write Zeroes: no data transfer, no MDTS
            let start = Int(lba) * model.blockSize
            model.state.withLock { $0.blocks.replaceSubrange(start..<(start + blocks * model.blockSize), with: repeatElement(0, count: blocks * model.blockSize)) }
            return NVMeStatusCode.success
        }
        let length = blocks * model.blockSize, page = 4096
        let pageCount = (length + page - 1) / page
        if model.maximumDataTransferShift > 0, pageCount > 1 << Int(model.maximumDataTransferShift) { return NVMeStatusCode.invalidField }
        // The PRPs: PRP1, then PRP2 as the second page or as a list of the rest.
        var pages = [qword(24)]
        if pageCount == 2 {
            pages.append(qword(32))
        } else if pageCount > 2 {
            guard let list = kernel.pciDeviceRead(address, iova: qword(32), length: 8 * (pageCount - 1)) else { return NVMeStatusCode.dataTransferError }
            for index in 0..<(pageCount - 1) {
                pages.append(list[(8 * index)..<(8 * index + 8)].reversed().reduce(0) { $0 << 8 | UInt64($1) })
            }
        }
        let start = Int(lba) * model.blockSize
        for (index, iova) in pages.enumerated() {
            let count = min(page, length - index * page)
            if opcode == 0x01 {
                guard let bytes = kernel.pciDeviceRead(address, iova: iova, length: count) else { return NVMeStatusCode.dataTransferError }
                model.state.withLock { $0.blocks.replaceSubrange((start + index * page)..<(start + index * page + count), with: bytes) }
            } else {
                let bytes = model.state.withLock { Array($0.blocks[(start + index * page)..<(start + index * page + count)]) }
                guard kernel.pciDeviceWrite(address, iova: iova, bytes: bytes) else { return NVMeStatusCode.dataTransferError }
            }
        }
        return NVMeStatusCode.success
    }
}
