public import DMAMemory
import IOMMUFD
public import VFIO

/// What Identify Controller says (CNS 01h).
public struct NVMeControllerIdentity: Sendable, Hashable {
    /// PCI vendor id (VID).
    public var vendorID: UInt16
    /// Serial number (SN), trimmed.
    public var serialNumber: String
    /// Model number (MN), trimmed.
    public var modelNumber: String
    /// Firmware revision (FR), trimmed.
    public var firmwareRevision: String
    /// Maximum data transfer size as a power of two of the minimum page size (MDTS; 0: no limit).
    public var maximumDataTransferShift: UInt8
    /// Number of namespaces (NN).
    public var namespaceCount: UInt32
}

/// What Identify Namespace says (CNS 00h), for the formatted LBA size.
public struct NVMeNamespaceIdentity: Sendable, Hashable {
    /// Size in logical blocks (NSZE).
    public var blockCount: UInt64
    /// Logical block size in bytes (from the formatted LBA format's LBADS).
    public var blockSize: Int

    /// A namespace of `blockCount` blocks of `blockSize` bytes.
    public init(blockCount: UInt64, blockSize: Int) {
        self.blockCount = blockCount
        self.blockSize = blockSize
    }
}

/// The errors of the driver.
public enum NVMeError: Error, Equatable, Sendable {
    /// The controller did not reach the state in time (CSTS.RDY, a completion).
    case timedOut(String)
    /// The controller fatal status bit is set (CSTS.CFS).
    case controllerFatal
    /// A command completed with an error status.
    case commandFailed(opcode: UInt8, status: NVMeStatus)
    /// No DMA memory for the queues or a PRP list.
    case outOfDMAMemory
    /// A request the driver refuses (more blocks than MDTS, a buffer not page aligned...).
    case invalidRequest(String)
}

/// A user-space NVMe driver on the toolkit (NVMe Base Specification 2.0): controller reset
/// and enable, the admin queue, Identify, I/O queue pairs, and reads and writes with PRPs
/// (PRP lists from a `DMAArena`), polling completion phase bits. One thread at a time.
///
/// The caller claims the device (bound, attached, Bus Master Enable set) and gives a
/// `DMAMemoryManager` over its address space for the queues; data buffers are the
/// caller's, by IOVA.
public final class NVMeController {
    /// The BAR0 registers.
    let registers: MMIORegion
    /// Where queues and PRP lists come from.
    let arena: DMAArena
    /// The doorbell stride in bytes (4 << CAP.DSTRD).
    let doorbellStride: UInt64
    /// The controller's memory page size (4 KiB: CC.MPS 0).
    public static let pageSize = 4096
    let timeoutNanoseconds: UInt64
    /// The device, for the queues' own doorbell mappings.
    let device: VFIODevice
    /// Where I/O queues' memory comes from.
    let manager: DMAMemoryManager
    var admin: NVMeQueuePair
    /// The queue behind the one-queue API (``createIOQueues(depth:)``, ``submit(_:namespace:lba:blocks:blockSize:iova:)``...).
    var io: NVMeIOQueue?
    /// The I/O queues the controller has, by id: their memory (kept until the controller
    /// deleted them, whatever happens to the queue objects) and the queue, to mark it deleted.
    private var ioQueues: [UInt16: (arena: DMAArena, queue: WeakIOQueue)] = [:]
    struct WeakIOQueue { weak var queue: NVMeIOQueue? }
    /// How many I/O queue pairs the controller allocated (Set Features, Number of Queues).
    public private(set) var grantedIOQueues: Int?
    /// How many were asked for, asked again after a controller reset.
    private var requestedIOQueues: Int?
    /// The MSI-X vectors completion interrupts arrive on, once enabled.
    private(set) var interrupts: NVMeInterrupts?
    private var nextCommandID: UInt16 = 0
    /// Identify Controller's answer, read at start.
    public private(set) var identity: NVMeControllerIdentity?

    /// Register offsets.
    enum Register {
        static let capabilities: UInt64 = 0x00, version: UInt64 = 0x08, configuration: UInt64 = 0x14, status: UInt64 = 0x1c
        static let adminQueueAttributes: UInt64 = 0x24, adminSubmissionQueue: UInt64 = 0x28, adminCompletionQueue: UInt64 = 0x30
        static let doorbells: UInt64 = 0x1000
    }

    /// Resets and enables the controller on `device` with an admin queue of `adminDepth`
    /// entries, then identifies it. Queues come from one 64 KiB region of `manager`.
    public init(_ device: VFIODevice, manager: DMAMemoryManager, adminDepth: Int = 32, timeout: Double = 10) throws {
        self.device = device
        self.manager = manager
        registers = try device.map(try device.region(0))
        arena = DMAArena(region: try manager.makeRegion(length: 64 << 10, backing: .exactly(.memfd)))
        timeoutNanoseconds = UInt64(timeout * 1e9)
        let capabilities = registers.read64(at: Register.capabilities)
        doorbellStride = 4 << ((capabilities >> 32) & 0xf)
        let maximumEntries = Int(capabilities & 0xffff) + 1
        let depth = min(adminDepth, maximumEntries)
        guard let queues = NVMeQueuePair.make(id: 0, depth: depth, arena: arena) else { throw NVMeError.outOfDMAMemory }
        admin = queues
        try reset()
        try enable()
        identity = try identifyController()
    }

    /// Gives the controller the admin queue (AQA, ASQ, ACQ) and enables it, then waits for
    /// CSTS.RDY.
    private func enable() throws {
        registers.write32(UInt32(admin.depth - 1) | UInt32(admin.depth - 1) << 16, at: Register.adminQueueAttributes)
        registers.write64(admin.submission.iova.rawValue, at: Register.adminSubmissionQueue, halves: .lowFirst)
        registers.write64(admin.completion.iova.rawValue, at: Register.adminCompletionQueue, halves: .lowFirst)
        // CC: EN, NVM command set, 4 KiB pages, round robin, 64-byte SQ and 16-byte CQ entries.
        registers.write32(1 | 6 << 16 | 4 << 20, at: Register.configuration)
        try waitForStatus(ready: true)
    }

    /// The controller is quiesced, then disabled, before its queues' memory goes: commands
    /// in flight are let complete (up to the timeout), because a controller left enabled would
    /// go on fetching from and writing to pages that are no longer its, and QEMU 7.2's nvme
    /// crashes (SIGSEGV) when it is disabled with I/O in flight. Best effort.
    deinit {
        let live = ioQueues.values.compactMap(\.queue.queue)
        _ = try? waitUntil("the I/O in flight") {
            live.allSatisfy { queue in
                queue.reapCompletions { _, _ in }
                return queue.outstanding == 0
            }
        }
        for queue in live { queue.deleted = true }
        try? reset()
        if interrupts != nil { try? device.disableInterrupts(.msix) }
    }

    /// Clears CC.EN and waits for CSTS.RDY to clear (the queues are gone after).
    func reset() throws {
        registers.write32(registers.read32(at: Register.configuration) & ~1, at: Register.configuration)
        try waitForStatus(ready: false)
    }

    /// Polls CSTS until RDY is `ready`.
    private func waitForStatus(ready: Bool) throws {
        try waitUntil("CSTS.RDY \(ready ? 1 : 0)") {
            let status = registers.readCompletion32(at: Register.status)
            if status & 0x2 != 0 { throw NVMeError.controllerFatal }
            return (status & 1 != 0) == ready
        }
    }

    /// Polls `done` every 10 µs until it is true or the timeout passes (`what` names the
    /// wait in the error, built only then).
    func waitUntil(_ what: @autoclosure () -> String, _ done: () throws -> Bool) throws {
        guard try DeviceWait.until(timeout: timeoutNanoseconds, interval: 10_000, done) else { throw NVMeError.timedOut(what()) }
    }

    /// The doorbell of queue `id`'s submission tail (`completion: false`) or completion head.
    private func doorbell(_ id: UInt16, completion: Bool) -> UInt64 {
        Register.doorbells + UInt64(2 * Int(id) + (completion ? 1 : 0)) * doorbellStride
    }

    /// Submits `command` on the admin queue and waits for its completion; returns DW0.
    func execute(_ command: NVMeCommand) throws -> UInt32 {
        var command = command
        nextCommandID &+= 1
        command.commandID = nextCommandID
        let tail = admin.submit(command)
        registers.writeDoorbell32(UInt32(tail), at: doorbell(0, completion: false))
        var completion: (dword0: UInt32, status: UInt16, commandID: UInt16)?
        try waitUntil("the completion of admin opcode 0x\(String(command.opcode, radix: 16))") {
            completion = admin.nextCompletion()
            return completion != nil
        }
        registers.writeDoorbell32(UInt32(admin.completionHead), at: doorbell(0, completion: true))
        let status = NVMeStatus(raw: completion!.status)
        guard status.isSuccess else { throw NVMeError.commandFailed(opcode: command.opcode, status: status) }
        return completion!.dword0
    }

    /// A page for a command's data, used and freed within the call.
    private func withPage<Result>(_ body: (DMASlice) throws -> Result) throws -> Result {
        guard let page = arena.allocate(Self.pageSize, alignment: Self.pageSize) else { throw NVMeError.outOfDMAMemory }
        defer { arena.free(page) }
        unsafe page.address.initializeMemory(as: UInt8.self, repeating: 0, count: Self.pageSize)
        return try body(page)
    }

    /// Identify Controller (CNS 01h).
    public func identifyController() throws -> NVMeControllerIdentity {
        try withPage { page in
            var command = NVMeCommand(opcode: NVMeOpcode.identify)
            command.prp1 = page.iova.rawValue
            command.cdw10 = 1
            _ = try execute(command)
            let bytes = unsafe UnsafeRawBufferPointer(start: page.address, count: Self.pageSize)
            func text(_ range: Range<Int>) -> String {
                var characters = unsafe Array(bytes[range])
                while let last = characters.last, last == 0x20 || last == 0 { characters.removeLast() }
                return String(decoding: characters, as: UTF8.self)
            }
            let vendor = unsafe UInt16(bytes[0]) | UInt16(bytes[1]) << 8, shift = unsafe bytes[77]
            return NVMeControllerIdentity(vendorID: vendor, serialNumber: text(4..<24), modelNumber: text(24..<64),
                                          firmwareRevision: text(64..<72), maximumDataTransferShift: shift,
                                          namespaceCount: unsafe bytes.loadUnaligned(fromByteOffset: 516, as: UInt32.self).littleEndian)
        }
    }

    /// The active namespace ids (Identify CNS 02h, the first 1024), in order: NN counts
    /// every namespace the controller could have, active or not.
    public func activeNamespaces() throws -> [UInt32] {
        try withPage { page in
            var command = NVMeCommand(opcode: NVMeOpcode.identify)
            command.prp1 = page.iova.rawValue
            command.cdw10 = 2
            _ = try execute(command)
            let bytes = unsafe UnsafeRawBufferPointer(start: page.address, count: Self.pageSize)
            return (0..<1024).lazy.map { unsafe bytes.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self).littleEndian }.prefix { $0 != 0 }.map { $0 }
        }
    }

    /// Identify Namespace (CNS 00h) of `namespace`.
    public func identifyNamespace(_ namespace: UInt32) throws -> NVMeNamespaceIdentity {
        try withPage { page in
            var command = NVMeCommand(opcode: NVMeOpcode.identify)
            command.namespace = namespace
            command.prp1 = page.iova.rawValue
            _ = try execute(command)
            let bytes = unsafe UnsafeRawBufferPointer(start: page.address, count: Self.pageSize)
            let format = unsafe Int(bytes[26] & 0xf)
            let lbaFormat = unsafe bytes.loadUnaligned(fromByteOffset: 128 + 4 * format, as: UInt32.self).littleEndian
            return NVMeNamespaceIdentity(blockCount: unsafe bytes.loadUnaligned(as: UInt64.self).littleEndian,
                                         blockSize: 1 << Int((lbaFormat >> 16) & 0xff))
        }
    }

    /// Set Features, Number of Queues: asks for `count` I/O submission and completion
    /// queues and returns how many pairs the controller allocated (it may give more or
    /// fewer; QEMU gives its `max_ioqpairs` whatever is asked). Only before the first I/O
    /// queue is made (after that, Command Sequence Error).
    @discardableResult
    public func requestIOQueues(_ count: Int) throws -> Int {
        guard (1...65535).contains(count) else { throw NVMeError.invalidRequest("1 to 65535 I/O queues") }
        var command = NVMeCommand(opcode: NVMeOpcode.setFeatures)
        command.cdw10 = 0x07
        command.cdw11 = UInt32(count - 1) | UInt32(count - 1) << 16
        let answer = try execute(command)
        let granted = Int(min(answer & 0xffff, answer >> 16)) + 1
        grantedIOQueues = granted
        requestedIOQueues = count
        return granted
    }

    /// Wires `count` MSI-X vectors to eventfds (VFIO_DEVICE_SET_IRQS), for I/O queues made
    /// with an interrupt vector to post their completions on
    /// (``makeIOQueue(depth:interruptVector:)``, ``NVMeIOQueue/waitForCompletions(timeout:_:)``).
    /// Once per controller; QEMU's nvme has 65 vectors.
    public func enableCompletionInterrupts(vectors count: Int) throws {
        guard interrupts == nil else { throw NVMeError.invalidRequest("completion interrupts are already enabled") }
        interrupts = NVMeInterrupts(vectors: try device.enableInterrupts(.msix, count: count))
    }

    /// Makes an I/O queue pair of `depth` entries (up to CAP.MQES + 1) with the lowest free
    /// queue id (within ``grantedIOQueues`` when known): memory of its own, its doorbell
    /// page mapped for it alone, Create I/O Completion Queue then Create I/O Submission
    /// Queue. With `interruptVector`, the completion queue signals that MSI-X vector (IEN)
    /// and the queue can block for its completions; without, it is polled only. Give it to
    /// the thread that will use it. Call from one thread at a time (the admin queue is the
    /// controller's).
    public func makeIOQueue(depth: Int = 64, interruptVector: Int? = nil) throws -> NVMeIOQueue {
        if let interruptVector {
            guard let interrupts, (0..<interrupts.count).contains(interruptVector) else {
                throw NVMeError.invalidRequest("vector \(interruptVector) is not among those enableCompletionInterrupts wired")
            }
        }
        let limit = grantedIOQueues ?? 65535
        guard let id = (1...limit).lazy.map({ UInt16($0) }).first(where: { ioQueues[$0] == nil }) else {
            throw NVMeError.invalidRequest("all \(limit) I/O queues the controller granted are in use")
        }
        let maximumEntries = Int(registers.read64(at: Register.capabilities) & 0xffff) + 1
        let entries = min(max(depth, 2), maximumEntries)
        // The two queues, page aligned, and two pages for PRP lists of waiting transfers.
        let length = (entries * 64 + Self.pageSize - 1) / Self.pageSize * Self.pageSize
            + (entries * 16 + Self.pageSize - 1) / Self.pageSize * Self.pageSize + 2 * Self.pageSize
        let queueArena = DMAArena(region: try manager.makeRegion(length: length, backing: .exactly(.memfd)))
        guard let pair = NVMeQueuePair.make(id: id, depth: entries, arena: queueArena) else { throw NVMeError.outOfDMAMemory }
        let doorbells = try device.map(try device.region(0), offset: Register.doorbells, length: UInt64(Self.pageSize))
        try createQueues(pair, interruptVector: interruptVector)
        let queue = NVMeIOQueue(id: id, pair: pair, arena: queueArena, doorbells: doorbells, doorbellStride: doorbellStride,
                                maximumDataTransferShift: identity?.maximumDataTransferShift, timeoutNanoseconds: timeoutNanoseconds,
                                interrupts: interruptVector.map { (interrupts!, $0) })
        ioQueues[id] = (queueArena, WeakIOQueue(queue: queue))
        return queue
    }

    /// Create I/O Completion Queue then Create I/O Submission Queue for `pair` (its id, depth
    /// and memory); the completion queue is deleted again when the submission queue is refused.
    private func createQueues(_ pair: NVMeQueuePair, interruptVector: Int?) throws {
        var completion = NVMeCommand(opcode: NVMeOpcode.createCompletionQueue)
        completion.prp1 = pair.completion.iova.rawValue
        completion.cdw10 = UInt32(pair.id) | UInt32(pair.depth - 1) << 16
        // Physically contiguous; interrupts enabled (IEN) on the vector (IV) when one is given.
        completion.cdw11 = 1 | (interruptVector.map { 2 | UInt32($0) << 16 } ?? 0)
        _ = try execute(completion)
        var submission = NVMeCommand(opcode: NVMeOpcode.createSubmissionQueue)
        submission.prp1 = pair.submission.iova.rawValue
        submission.cdw10 = UInt32(pair.id) | UInt32(pair.depth - 1) << 16
        submission.cdw11 = 1 | UInt32(pair.id) << 16  // physically contiguous, its own completion queue
        do {
            _ = try execute(submission)
        } catch {
            var delete = NVMeCommand(opcode: NVMeOpcode.deleteCompletionQueue)
            delete.cdw10 = UInt32(pair.id)
            _ = try? execute(delete)
            throw error
        }
    }

    /// Deletes `queue` in the controller (its submission queue, then its completion queue),
    /// after letting the commands in flight on it complete (up to the timeout). The queue
    /// refuses submissions after.
    public func deleteIOQueue(_ queue: NVMeIOQueue) throws {
        guard ioQueues[queue.id]?.queue.queue === queue else { throw NVMeError.invalidRequest("I/O queue \(queue.id) is not this controller's") }
        _ = try? waitUntil("the I/O in flight on queue \(queue.id)") {
            queue.reapCompletions { _, _ in }
            return queue.outstanding == 0
        }
        try deleteQueues(queue.id)
        queue.deleted = true
        if io === queue { io = nil }
    }

    /// Abort: asks the controller to abort command `commandID` of `queue` (what a driver does
    /// first when a command times out) and returns whether it did (Completion Queue Entry
    /// DW0 bit 0 clear). A controller may decline; QEMU 7.2's nvme always does (its answer is
    /// "not aborted"), and refuses a queue it does not have (Invalid Field). When the command
    /// still does not complete, ``resetController()`` is the next step;
    /// ``recoverTimedOutCommand(_:on:_:)`` takes both steps.
    public func abort(commandID: UInt16, queue: NVMeIOQueue) throws -> Bool {
        var command = NVMeCommand(opcode: NVMeOpcode.abort)
        command.cdw10 = UInt32(queue.id) | UInt32(commandID) << 16
        return try execute(command) & 1 == 0
    }

    /// Controller reset, the last step of a driver's timeout handling: disables the
    /// controller (CC.EN clear, then CSTS.RDY clear), which deletes every queue and drops
    /// every command in flight, enables it again on the same admin queue, asks for the same
    /// number of I/O queues (``requestIOQueues(_:)``) and creates every live I/O queue again
    /// with its id, depth, memory and interrupt vector. The ``NVMeIOQueue`` objects stay
    /// valid: the next reap of each reports the completions the controller had posted
    /// before the reset with their status, then the commands it never completed as
    /// ``NVMeStatus/abortedByHost``. No thread may use a queue during the call. Returns how
    /// many commands were lost.
    ///
    /// On QEMU 7.2 call it only when the controller has finished every command (completions
    /// posted and not reaped yet are fine): its nvme crashes (SIGSEGV) when it is disabled
    /// with a command it is still running (seen in this project's VM lane); a real
    /// controller, and MockKernel's, drop such commands.
    ///
    /// - Throws: the error of a step that failed; the controller is then left disabled or
    ///   without queues, every queue refuses submissions, and a new ``NVMeController`` on the
    ///   device is the way back.
    @discardableResult
    public func resetController() throws -> Int {
        let live = ioQueues.sorted { $0.key < $1.key }.compactMap { $0.value.queue.queue }
        // The memory of queues nobody holds any more goes with the controller's queues.
        for (id, entry) in ioQueues where entry.queue.queue == nil { ioQueues[id] = nil }
        do {
            try reset()
            var lost = 0
            for queue in live { lost += queue.restartAfterControllerReset() }
            admin.restart()
            try enable()
            if let requestedIOQueues { try requestIOQueues(requestedIOQueues) }
            for queue in live { try createQueues(queue.pair, interruptVector: queue.interrupts?.vector) }
            return lost
        } catch {
            for queue in live { queue.deleted = true }
            ioQueues = [:]
            throw error
        }
    }

    /// What ``recoverTimedOutCommand(_:on:_:)`` did.
    public enum TimeoutRecovery: Sendable, Equatable {
        /// The command completed after all (before or while the abort was asked); its
        /// completion went to the handler with its status.
        case completed
        /// The controller aborted it: its completion (Command Abort Requested) went to the handler.
        case aborted
        /// The controller declined the abort, or the command still did not complete: the
        /// controller was reset (``resetController()``) with `lost` commands lost in all
        /// queues; this queue's went to the handler as ``NVMeStatus/abortedByHost``.
        case reset(lost: Int)
    }

    /// A driver's timeout handling for command `commandID` of `queue`, called by the thread
    /// that owns the queue when the command is past its time: Abort
    /// (``abort(commandID:queue:)``), then, when the controller declines or the command has
    /// not completed within the controller's timeout, a controller reset
    /// (``resetController()``). Completions reaped meanwhile on `queue`, the command's
    /// included, go to `completed`. No other thread may use any queue during the call.
    public func recoverTimedOutCommand(_ commandID: UInt16, on queue: NVMeIOQueue,
                                       _ completed: (_ commandID: UInt16, _ status: NVMeStatus) -> Void) throws -> TimeoutRecovery {
        var answer: NVMeStatus?
        func reap() -> Bool {
            queue.reapCompletions { id, status in
                if id == commandID { answer = status }
                completed(id, status)
            }
            return answer != nil
        }
        if reap() { return .completed }
        // An Abort that fails (refused, or the admin queue does not answer) counts as declined.
        if (try? abort(commandID: commandID, queue: queue)) == true {
            if DeviceWait.until(timeout: timeoutNanoseconds, interval: 10_000, reap) {
                return answer?.codeType == 0 && answer?.code == 0x07 ? .aborted : .completed  // Command Abort Requested
            }
        } else if reap() {
            return .completed
        }
        let lost = try resetController()
        _ = reap()
        return .reset(lost: lost)
    }

    /// Delete I/O Submission Queue then Completion Queue `id`; its memory goes after.
    private func deleteQueues(_ id: UInt16) throws {
        var submission = NVMeCommand(opcode: NVMeOpcode.deleteSubmissionQueue)
        submission.cdw10 = UInt32(id)
        _ = try execute(submission)
        var completion = NVMeCommand(opcode: NVMeOpcode.deleteCompletionQueue)
        completion.cdw10 = UInt32(id)
        _ = try execute(completion)
        ioQueues[id] = nil
    }

    /// Makes the I/O queue pair behind the one-queue API (``submit(_:namespace:lba:blocks:blockSize:iova:)``,
    /// ``read(namespace:lba:blocks:blockSize:into:)``...) with `depth` entries.
    public func createIOQueues(depth: Int = 64) throws {
        io = try makeIOQueue(depth: depth)
    }

    /// The queue behind the one-queue API, or the error that says to make it.
    private func defaultQueue() throws -> NVMeIOQueue {
        guard let io else { throw NVMeError.invalidRequest("no I/O queues: call createIOQueues first") }
        return io
    }

    /// Reads `blocks` logical blocks from `lba` of `namespace` into `[iova, iova + blocks *
    /// blockSize)` (page aligned, contiguous in the IOVA space) on the one-queue API's queue.
    public func read(namespace: UInt32, lba: UInt64, blocks: Int, blockSize: Int, into iova: IOVA) throws {
        try defaultQueue().read(namespace: namespace, lba: lba, blocks: blocks, blockSize: blockSize, into: iova)
    }

    /// Writes `blocks` logical blocks at `lba` of `namespace` from `[iova, iova + blocks *
    /// blockSize)` (page aligned, contiguous in the IOVA space) on the one-queue API's queue.
    public func write(namespace: UInt32, lba: UInt64, blocks: Int, blockSize: Int, from iova: IOVA) throws {
        try defaultQueue().write(namespace: namespace, lba: lba, blocks: blocks, blockSize: blockSize, from: iova)
    }

    /// The I/O commands the driver submits.
    public enum Transfer: Sendable {
        /// NVM Read: the device writes host memory.
        case read
        /// NVM Write: the device reads host memory.
        case write

        var opcode: UInt8 { self == .read ? NVMeOpcode.read : NVMeOpcode.write }
    }

    /// Commands submitted on the one-queue API's queue and not reaped yet.
    public var outstanding: Int { io?.outstanding ?? 0 }

    /// Submits on the one-queue API's queue (see ``NVMeIOQueue/submit(_:namespace:lba:blocks:blockSize:iova:)``).
    ///
    /// - Throws: ``NVMeError/invalidRequest(_:)`` without I/O queues, with the queue full,
    ///   for more than two pages or an unaligned IOVA.
    public func submit(_ transfer: Transfer, namespace: UInt32, lba: UInt64, blocks: Int, blockSize: Int, iova: IOVA) throws -> UInt16 {
        try defaultQueue().submit(transfer, namespace: namespace, lba: lba, blocks: blocks, blockSize: blockSize, iova: iova)
    }

    /// Reaps the one-queue API's queue (see ``NVMeIOQueue/reapCompletions(_:)``).
    @discardableResult
    public func reapCompletions(_ completed: (_ commandID: UInt16, _ status: NVMeStatus) -> Void) -> Int {
        io?.reapCompletions(completed) ?? 0
    }

    /// A Read or Write command for `[iova, iova + blocks * blockSize)`: PRP1, and PRP2 as
    /// the second page or as `list` filled with the rest; refused past MDTS.
    static func dataCommand(_ opcode: UInt8, namespace: UInt32, lba: UInt64, blocks: Int, blockSize: Int, iova: IOVA, list: DMASlice?,
                            maximumDataTransferShift: UInt8?) throws -> NVMeCommand {
        guard blocks > 0, blocks <= 1 << 16, iova.rawValue % UInt64(pageSize) == 0 else {
            throw NVMeError.invalidRequest("1 to 65536 blocks into a page-aligned IOVA")
        }
        let pages = (blocks * blockSize + pageSize - 1) / pageSize
        if let shift = maximumDataTransferShift, shift > 0, pages > 1 << Int(shift) {
            throw NVMeError.invalidRequest("\(pages) pages is past MDTS (\(1 << Int(shift)) pages)")
        }
        var command = NVMeCommand(opcode: opcode)
        command.namespace = namespace
        command.prp1 = iova.rawValue
        command.cdw10 = UInt32(truncatingIfNeeded: lba)
        command.cdw11 = UInt32(truncatingIfNeeded: lba >> 32)
        command.cdw12 = UInt32(blocks - 1)
        if pages == 2 {
            command.prp2 = iova.rawValue + UInt64(pageSize)
        } else if pages > 2, let list {
            for index in 1..<pages {
                unsafe list.address.storeBytes(of: (iova.rawValue + UInt64(index * pageSize)).littleEndian, toByteOffset: 8 * (index - 1), as: UInt64.self)
            }
            command.prp2 = list.iova.rawValue
        }
        return command
    }

    /// Deletes every I/O queue, shuts the controller down (CC.SHN normal, then CSTS.SHST
    /// complete) and disables it.
    public func shutdown() throws {
        for (id, entry) in ioQueues.sorted(by: { $0.key < $1.key }) {
            try deleteQueues(id)
            entry.queue.queue?.deleted = true
        }
        io = nil
        registers.write32(registers.read32(at: Register.configuration) | 1 << 14, at: Register.configuration)
        try waitUntil("CSTS.SHST complete") { (registers.readCompletion32(at: Register.status) >> 2) & 3 == 2 }
        try reset()
        if interrupts != nil {
            try device.disableInterrupts(.msix)
            interrupts = nil
        }
    }
}

/// The controller's completion interrupt vectors, shared by the queues that wait on them.
final class NVMeInterrupts: Sendable {
    let vectors: InterruptVectors

    /// How many vectors are wired.
    var count: Int { vectors.count }

    init(vectors: consuming InterruptVectors) {
        self.vectors = vectors
    }
}

/// One submission queue and its completion queue, in DMA memory.
struct NVMeQueuePair {
    let id: UInt16
    let depth: Int
    let submission: DMASlice
    let completion: DMASlice
    var submissionTail = 0
    var completionHead = 0
    var phase: UInt16 = 1

    static func make(id: UInt16, depth: Int, arena: DMAArena) -> NVMeQueuePair? {
        guard let submission = arena.allocate(depth * 64, alignment: NVMeController.pageSize) else { return nil }
        guard let completion = arena.allocate(depth * 16, alignment: NVMeController.pageSize) else {
            arena.free(submission)
            return nil
        }
        unsafe completion.address.initializeMemory(as: UInt8.self, repeating: 0, count: depth * 16)
        return NVMeQueuePair(id: id, depth: depth, submission: submission, completion: completion)
    }

    /// Starts the queues over on the same memory: empty, phase 1, no completion posted.
    mutating func restart() {
        submissionTail = 0
        completionHead = 0
        phase = 1
        unsafe completion.address.initializeMemory(as: UInt8.self, repeating: 0, count: depth * 16)
    }

    /// Stores `command` at the tail and returns the new tail (for the doorbell).
    mutating func submit(_ command: NVMeCommand) -> Int {
        unsafe command.store(to: submission.address + submissionTail * 64)
        submissionTail = submissionTail + 1 == depth ? 0 : submissionTail + 1  // no division per command
        return submissionTail
    }

    /// How many completions the controller has posted past the head (phase bits read, nothing taken).
    func postedCompletions() -> Int {
        var head = completionHead, expected = phase, posted = 0
        while posted < depth, unsafe DeviceWrittenMemory.load16(completion.address + head * 16 + 14) & 1 == expected {
            posted += 1
            head += 1
            if head == depth { head = 0; expected ^= 1 }
        }
        return posted
    }

    /// The next completion if its phase bit says the controller wrote it.
    mutating func nextCompletion() -> (dword0: UInt32, status: UInt16, commandID: UInt16)? {
        let entry = unsafe completion.address + completionHead * 16
        let status = unsafe DeviceWrittenMemory.load16(entry + 14)
        guard status & 1 == phase else { return nil }
        let dword0 = UInt32(littleEndian: unsafe entry.loadUnaligned(as: UInt32.self))
        let commandID = UInt16(littleEndian: unsafe entry.loadUnaligned(fromByteOffset: 12, as: UInt16.self))
        completionHead += 1
        if completionHead == depth {
            completionHead = 0
            phase ^= 1
        }
        return (dword0, status, commandID)
    }
}
