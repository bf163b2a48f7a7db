import Dispatch
import DMAMemory
import IOMMUFD
import VFIO

/// One I/O queue pair of an ``NVMeController`` (a submission queue and its own completion
/// queue), made by ``NVMeController/makeIOQueue(depth:interruptVector:)``: the unit a thread owns, as SPDK's
/// qpairs and libvfn's queues are. Each queue has its own command id space, its own
/// doorbells and its own DMA memory, so threads with a queue each submit and reap without
/// sharing anything but the controller's BAR mapping. One thread at a time per queue
/// (hand a queue to the thread that will use it; it is `Sendable` for that hand-over only).
///
/// Completions are polled by phase bit; the completion head doorbell is written at most
/// once per reap (on a polled queue, only once the controller needs the room); every submission is ordered after its entry's stores by the doorbell write's
/// barrier. ``submit(_:namespace:lba:blocks:blockSize:iova:)`` allocates nothing.
public final class NVMeIOQueue: @unchecked Sendable {
    /// The queue id (1 and up; 0 is the admin queue).
    public let id: UInt16
    /// Entries in each of the two queues; at most depth - 1 commands are in flight.
    public var depth: Int { pair.depth }
    /// The BAR's doorbell page, mapped for this queue alone (offsets from 0x1000).
    let doorbells: MMIORegion
    let submissionDoorbell: UInt64, completionDoorbell: UInt64
    let arena: DMAArena
    var pair: NVMeQueuePair
    let maximumDataTransferShift: UInt8?
    let timeoutNanoseconds: UInt64
    /// The vectors and this queue's completion vector, when it was made with one.
    let interrupts: (vectors: NVMeInterrupts, vector: Int)?
    private var nextCommandID: UInt16 = 0
    /// Set when the controller deleted the queue (``NVMeController/deleteIOQueue(_:)``,
    /// shutdown): submissions then fail.
    var deleted = false
    /// Commands submitted and not reaped yet.
    public private(set) var outstanding = 0
    /// Interrupts taken from the queue's vector by ``waitForCompletions(timeout:_:)``.
    public private(set) var interruptsTaken: UInt64 = 0
    /// The command ids in flight, one bit each (8 KiB, made once): what a controller reset
    /// reports as lost.
    private var inFlight = [UInt64](repeating: 0, count: 1024)
    /// What a controller reset left to report, by the next reap: the completions the
    /// controller had posted and nobody had reaped yet, with their status, then the
    /// commands it never completed, as ``NVMeStatus/abortedByHost``.
    private var leftByReset: [(commandID: UInt16, status: NVMeStatus)] = []

    init(id: UInt16, pair: NVMeQueuePair, arena: DMAArena, doorbells: consuming MMIORegion, doorbellStride: UInt64,
         maximumDataTransferShift: UInt8?, timeoutNanoseconds: UInt64, interrupts: (vectors: NVMeInterrupts, vector: Int)?) {
        self.interrupts = interrupts
        self.id = id
        self.pair = pair
        self.arena = arena
        self.doorbells = doorbells
        submissionDoorbell = UInt64(2 * Int(id)) * doorbellStride
        completionDoorbell = UInt64(2 * Int(id) + 1) * doorbellStride
        self.maximumDataTransferShift = maximumDataTransferShift
        self.timeoutNanoseconds = timeoutNanoseconds
    }

    /// Submits a read or write of `blocks` blocks at `lba` without waiting and returns its
    /// command id; ``reapCompletions(_:)`` collects it. Up to depth - 1 at a time, each at
    /// most two pages (PRP1 and PRP2), so nothing is allocated per command.
    ///
    /// - Throws: ``NVMeError/invalidRequest(_:)`` with the queue full or deleted, for more
    ///   than two pages or an unaligned IOVA.
    public func submit(_ transfer: NVMeController.Transfer, namespace: UInt32, lba: UInt64, blocks: Int, blockSize: Int, iova: IOVA) throws -> UInt16 {
        let pages = (blocks * blockSize + NVMeController.pageSize - 1) / NVMeController.pageSize
        guard pages <= 2 else { throw NVMeError.invalidRequest("submit takes at most two pages; read(...) and write(...) take more") }
        return try submit(try NVMeController.dataCommand(transfer.opcode, namespace: namespace, lba: lba, blocks: blocks, blockSize: blockSize, iova: iova, list: nil, maximumDataTransferShift: maximumDataTransferShift))
    }

    /// Queues a read or write as ``submit(_:namespace:lba:blocks:blockSize:iova:)`` does but
    /// without ringing the doorbell: the controller sees it at the next
    /// ``ringSubmissionDoorbell()``, one doorbell write for a whole batch (as libvfn and SPDK's
    /// batched submissions do; under emulation every doorbell write is an exit to the device).
    public func enqueue(_ transfer: NVMeController.Transfer, namespace: UInt32, lba: UInt64, blocks: Int, blockSize: Int, iova: IOVA) throws -> UInt16 {
        let pages = (blocks * blockSize + NVMeController.pageSize - 1) / NVMeController.pageSize
        guard pages <= 2 else { throw NVMeError.invalidRequest("enqueue takes at most two pages; read(...) and write(...) take more") }
        return try enqueue(try NVMeController.dataCommand(transfer.opcode, namespace: namespace, lba: lba, blocks: blocks, blockSize: blockSize, iova: iova, list: nil, maximumDataTransferShift: maximumDataTransferShift))
    }

    /// Writes the submission tail doorbell when commands were queued since the last write
    /// (the write barrier before it orders their entries first).
    public func ringSubmissionDoorbell() {
        guard pair.submissionTail != ringedTail else { return }
        // The completion queue must have room for every command in flight.
        if unannouncedCompletions > 0 && outstanding + unannouncedCompletions >= pair.depth - 1 { announceCompletionHead() }
        ringedTail = pair.submissionTail
        doorbells.writeDoorbell32(UInt32(ringedTail), at: submissionDoorbell)
    }

    /// The tail the controller was last told.
    private var ringedTail = 0
    /// Completions taken since the controller was last told the completion queue's head.
    private var unannouncedCompletions = 0

    /// Writes the completion queue's head doorbell.
    private func announceCompletionHead() {
        unannouncedCompletions = 0
        doorbells.writeDoorbell32(UInt32(pair.completionHead), at: completionDoorbell)
    }

    /// Stores `command` (its command id replaced by the queue's next) in the submission queue.
    private func enqueue(_ command: NVMeCommand) throws -> UInt16 {
        guard !deleted else { throw NVMeError.invalidRequest("I/O queue \(id) was deleted") }
        guard outstanding < pair.depth - 1 else { throw NVMeError.invalidRequest("the I/O queue is full: reap completions first") }
        var command = command
        nextCommandID &+= 1
        command.commandID = nextCommandID
        _ = pair.submit(command)
        outstanding += 1
        inFlight[Int(nextCommandID >> 6)] |= 1 << UInt64(nextCommandID & 63)
        return command.commandID
    }

    /// Submits `command` (its command id replaced by the queue's next) and rings the doorbell.
    func submit(_ command: NVMeCommand) throws -> UInt16 {
        let commandID = try enqueue(command)
        ringSubmissionDoorbell()
        return commandID
    }

    /// Collects the completions the controller has posted, calling `completed` with each
    /// command id and status, then writes the completion head doorbell at most once (a
    /// polled queue defers it while the controller has room, see below); returns how many.
    @discardableResult
    public func reapCompletions(_ completed: (_ commandID: UInt16, _ status: NVMeStatus) -> Void) -> Int {
        var count = 0
        while let completion = pair.nextCompletion() {
            inFlight[Int(completion.commandID >> 6)] &= ~(1 << UInt64(completion.commandID & 63))
            completed(completion.commandID, NVMeStatus(raw: completion.status))
            count += 1
        }
        if count > 0 {
            outstanding -= count
            unannouncedCompletions += count
            // A polled queue tells the controller its new head only when the controller
            // could otherwise run out of room for what is in flight (at most depth - 1
            // entries hold completions) or half the queue was taken: at queue depths well
            // below the queue's size, one doorbell write every depth / 2 completions instead
            // of one per reap. A queue on an interrupt vector tells it at once.
            if interrupts != nil || outstanding + unannouncedCompletions >= pair.depth - 1 || 2 * unannouncedCompletions >= pair.depth {
                announceCompletionHead()
            }
        }
        if !leftByReset.isEmpty { count += reportLeftByReset(completed) }
        return count
    }

    /// Reports what a controller reset left (``leftByReset``).
    private func reportLeftByReset(_ completed: (_ commandID: UInt16, _ status: NVMeStatus) -> Void) -> Int {
        let left = leftByReset.count
        for (commandID, status) in leftByReset { completed(commandID, status) }
        leftByReset.removeAll()
        outstanding -= left
        return left
    }

    /// After the controller was disabled (every queue gone with it, every command in flight
    /// dropped): the completions it had posted are kept with their status, the commands it
    /// never completed are kept as lost, both for the next reap, and the queue starts over
    /// empty on the same memory (tail, head and phase as new, the completion queue zeroed)
    /// for the controller to create again.
    func restartAfterControllerReset() -> Int {
        while let completion = pair.nextCompletion() {
            inFlight[Int(completion.commandID >> 6)] &= ~(1 << UInt64(completion.commandID & 63))
            leftByReset.append((completion.commandID, NVMeStatus(raw: completion.status)))
        }
        let posted = leftByReset.count
        for (word, bits) in inFlight.enumerated() where bits != 0 {
            for bit in 0..<64 where bits & 1 << UInt64(bit) != 0 { leftByReset.append((UInt16(word * 64 + bit), .abortedByHost)) }
            inFlight[word] = 0
        }
        pair.restart()
        ringedTail = 0
        unannouncedCompletions = 0
        return leftByReset.count - posted
    }

    /// Blocks (in `poll(2)` on the queue's MSI-X eventfd, not spinning) until the controller
    /// has posted completions or `timeout` seconds pass, then reaps them as
    /// ``reapCompletions(_:)`` does; returns how many (0 on timeout). For a queue made with an
    /// interrupt vector (``NVMeController/makeIOQueue(depth:interruptVector:)``).
    ///
    /// - Throws: ``NVMeError/invalidRequest(_:)`` for a polled queue; the eventfd's error.
    @discardableResult
    public func waitForCompletions(timeout: Double, _ completed: (_ commandID: UInt16, _ status: NVMeStatus) -> Void) throws -> Int {
        guard let interrupts else { throw NVMeError.invalidRequest("I/O queue \(id) was made without an interrupt vector") }
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(max(0, timeout) * 1e9)
        while true {
            // Reap first: completions posted before the wait are taken at once, with the
            // interrupts they raised (so that a later wait does not wake for them).
            let reaped = reapCompletions(completed)
            if reaped > 0 {
                interruptsTaken += try interrupts.vectors.vectors.takePending(vector: interrupts.vector)
                return reaped
            }
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < deadline else { return 0 }
            interruptsTaken += try interrupts.vectors.vectors.wait(vector: interrupts.vector, timeout: Double(deadline - now) / 1e9)
        }
    }

    /// Reads `blocks` logical blocks from `lba` into `[iova, iova + blocks * blockSize)`
    /// (page aligned, contiguous in the IOVA space; a PRP list past two pages, up to MDTS)
    /// and waits for it. Not while ``submit(_:namespace:lba:blocks:blockSize:iova:)``'s
    /// commands are in flight on this queue (their completions would be lost to them).
    public func read(namespace: UInt32, lba: UInt64, blocks: Int, blockSize: Int, into iova: IOVA) throws {
        try transfer(NVMeOpcode.read, namespace: namespace, lba: lba, blocks: blocks, blockSize: blockSize, iova: iova)
    }

    /// Writes `blocks` logical blocks at `lba` from `[iova, iova + blocks * blockSize)` and
    /// waits for it (as ``read(namespace:lba:blocks:blockSize:into:)``).
    public func write(namespace: UInt32, lba: UInt64, blocks: Int, blockSize: Int, from iova: IOVA) throws {
        try transfer(NVMeOpcode.write, namespace: namespace, lba: lba, blocks: blocks, blockSize: blockSize, iova: iova)
    }

    /// Flush: what the namespace's volatile write cache holds goes to media; waits for it.
    public func flush(namespace: UInt32) throws {
        var command = NVMeCommand(opcode: NVMeOpcode.flush)
        command.namespace = namespace
        try wait(for: try submit(command), opcode: NVMeOpcode.flush)
    }

    /// Write Zeroes: `blocks` blocks (1 to 65536) from `lba` read back as zeroes, with no
    /// data transfer; waits for it.
    public func writeZeroes(namespace: UInt32, lba: UInt64, blocks: Int) throws {
        guard blocks > 0, blocks <= 1 << 16 else { throw NVMeError.invalidRequest("Write Zeroes takes 1 to 65536 blocks") }
        var command = NVMeCommand(opcode: NVMeOpcode.writeZeroes)
        command.namespace = namespace
        command.cdw10 = UInt32(truncatingIfNeeded: lba)
        command.cdw11 = UInt32(truncatingIfNeeded: lba >> 32)
        command.cdw12 = UInt32(blocks - 1)
        try wait(for: try submit(command), opcode: NVMeOpcode.writeZeroes)
    }

    /// A read or write that waits for its own completion, with a PRP list page from the
    /// queue's memory for more than two pages.
    private func transfer(_ opcode: UInt8, namespace: UInt32, lba: UInt64, blocks: Int, blockSize: Int, iova: IOVA) throws {
        let pages = (blocks * blockSize + NVMeController.pageSize - 1) / NVMeController.pageSize
        var list: DMASlice?
        if pages > 2 {
            guard pages - 1 <= NVMeController.pageSize / 8 else {
                throw NVMeError.invalidRequest("\(pages) pages need a PRP list longer than one page")
            }
            guard let page = arena.allocate(NVMeController.pageSize, alignment: NVMeController.pageSize) else { throw NVMeError.outOfDMAMemory }
            list = page
        }
        defer { if let list { arena.free(list) } }
        let command = try NVMeController.dataCommand(opcode, namespace: namespace, lba: lba, blocks: blocks, blockSize: blockSize, iova: iova, list: list, maximumDataTransferShift: maximumDataTransferShift)
        try wait(for: try submit(command), opcode: opcode)
    }

    /// Polls until command `commandID` completes (others completed meanwhile are dropped)
    /// and throws its error status.
    private func wait(for commandID: UInt16, opcode: UInt8) throws {
        var status: NVMeStatus?
        let done = DeviceWait.until(timeout: timeoutNanoseconds, interval: 10_000) {
            reapCompletions { id, answer in if id == commandID { status = answer } }
            return status != nil
        }
        guard done else { throw NVMeError.timedOut("the completion of I/O opcode 0x\(String(opcode, radix: 16)) on queue \(id)") }
        guard status!.isSuccess else { throw NVMeError.commandFailed(opcode: opcode, status: status!) }
    }
}
