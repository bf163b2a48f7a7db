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
    private let timeoutNanoseconds: UInt64
    var admin: NVMeQueuePair
    var io: NVMeQueuePair?
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
        registers.write32(UInt32(depth - 1) | UInt32(depth - 1) << 16, at: Register.adminQueueAttributes)
        registers.write64(admin.submission.iova.rawValue, at: Register.adminSubmissionQueue, halves: .lowFirst)
        registers.write64(admin.completion.iova.rawValue, at: Register.adminCompletionQueue, halves: .lowFirst)
        // CC: EN, NVM command set, 4 KiB pages, round robin, 64-byte SQ and 16-byte CQ entries.
        registers.write32(1 | 6 << 16 | 4 << 20, at: Register.configuration)
        try waitForStatus(ready: true)
        identity = try identifyController()
    }

    /// The controller is quiesced, then disabled, before its queues' memory goes: commands
    /// in flight are let complete (up to the timeout), because a controller left enabled would
    /// go on fetching from and writing to pages that are no longer its, and QEMU 7.2's nvme
    /// crashes (SIGSEGV) when it is disabled with I/O in flight. Best effort.
    deinit {
        _ = try? waitUntil("the I/O in flight") {
            reapCompletions { _, _ in }
            return outstanding == 0
        }
        try? reset()
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
    private func waitUntil(_ what: @autoclosure () -> String, _ done: () throws -> Bool) throws {
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

    /// Creates the I/O queue pair (queue 1) with `depth` entries.
    public func createIOQueues(depth: Int = 64) throws {
        let maximumEntries = Int(registers.read64(at: Register.capabilities) & 0xffff) + 1
        guard let queues = NVMeQueuePair.make(id: 1, depth: min(depth, maximumEntries), arena: arena) else { throw NVMeError.outOfDMAMemory }
        var completion = NVMeCommand(opcode: NVMeOpcode.createCompletionQueue)
        completion.prp1 = queues.completion.iova.rawValue
        completion.cdw10 = 1 | UInt32(queues.depth - 1) << 16
        completion.cdw11 = 1  // physically contiguous, no interrupts
        _ = try execute(completion)
        var submission = NVMeCommand(opcode: NVMeOpcode.createSubmissionQueue)
        submission.prp1 = queues.submission.iova.rawValue
        submission.cdw10 = 1 | UInt32(queues.depth - 1) << 16
        submission.cdw11 = 1 | 1 << 16  // physically contiguous, completion queue 1
        _ = try execute(submission)
        io = queues
    }

    /// Reads `blocks` logical blocks from `lba` of `namespace` into `[iova, iova + blocks *
    /// blockSize)` (page aligned, contiguous in the IOVA space).
    public func read(namespace: UInt32, lba: UInt64, blocks: Int, blockSize: Int, into iova: IOVA) throws {
        try transfer(NVMeOpcode.read, namespace: namespace, lba: lba, blocks: blocks, blockSize: blockSize, iova: iova)
    }

    /// Writes `blocks` logical blocks at `lba` of `namespace` from `[iova, iova + blocks *
    /// blockSize)` (page aligned, contiguous in the IOVA space).
    public func write(namespace: UInt32, lba: UInt64, blocks: Int, blockSize: Int, from iova: IOVA) throws {
        try transfer(NVMeOpcode.write, namespace: namespace, lba: lba, blocks: blocks, blockSize: blockSize, iova: iova)
    }

    /// The I/O commands the driver submits.
    public enum Transfer: Sendable {
        /// NVM Read: the device writes host memory.
        case read
        /// NVM Write: the device reads host memory.
        case write

        var opcode: UInt8 { self == .read ? NVMeOpcode.read : NVMeOpcode.write }
    }

    /// Commands submitted on the I/O queue and not reaped yet.
    public private(set) var outstanding = 0

    /// Submits a read or write of `blocks` blocks at `lba` on the I/O queue without waiting
    /// and returns its command id; ``reapCompletions(_:)`` collects it. For queue depths
    /// above 1: up to the queue's depth minus one at a time, each at most two pages (PRP1
    /// and PRP2), so nothing is allocated per command.
    ///
    /// - Throws: ``NVMeError/invalidRequest(_:)`` without I/O queues, with the queue full,
    ///   for more than two pages or an unaligned IOVA.
    public func submit(_ transfer: Transfer, namespace: UInt32, lba: UInt64, blocks: Int, blockSize: Int, iova: IOVA) throws -> UInt16 {
        let pages = (blocks * blockSize + Self.pageSize - 1) / Self.pageSize
        guard pages <= 2 else { throw NVMeError.invalidRequest("submit takes at most two pages; read(...) and write(...) take more") }
        return try submit(command(transfer.opcode, namespace: namespace, lba: lba, blocks: blocks, blockSize: blockSize, iova: iova, list: nil))
    }

    private func submit(_ command: NVMeCommand) throws -> UInt16 {
        guard io != nil else { throw NVMeError.invalidRequest("no I/O queues: call createIOQueues first") }
        guard outstanding < io!.depth - 1 else { throw NVMeError.invalidRequest("the I/O queue is full: reap completions first") }
        var command = command
        nextCommandID &+= 1
        command.commandID = nextCommandID
        let tail = io!.submit(command)
        registers.writeDoorbell32(UInt32(tail), at: doorbell(1, completion: false))
        outstanding += 1
        return command.commandID
    }

    /// Collects the I/O completions the controller has posted, calling `completed` with
    /// each command id and status, then rings the completion doorbell once; returns how many.
    @discardableResult
    public func reapCompletions(_ completed: (_ commandID: UInt16, _ status: NVMeStatus) -> Void) -> Int {
        guard io != nil else { return 0 }
        var count = 0
        while let completion = io!.nextCompletion() {
            completed(completion.commandID, NVMeStatus(raw: completion.status))
            count += 1
        }
        if count > 0 {
            outstanding -= count
            registers.writeDoorbell32(UInt32(io!.completionHead), at: doorbell(1, completion: true))
        }
        return count
    }

    /// A Read or Write command for `[iova, iova + blocks * blockSize)`: PRP1, and PRP2 as
    /// the second page or as `list` filled with the rest.
    private func command(_ opcode: UInt8, namespace: UInt32, lba: UInt64, blocks: Int, blockSize: Int, iova: IOVA, list: DMASlice?) throws -> NVMeCommand {
        guard blocks > 0, blocks <= 1 << 16, iova.rawValue % UInt64(Self.pageSize) == 0 else {
            throw NVMeError.invalidRequest("1 to 65536 blocks into a page-aligned IOVA")
        }
        let pages = (blocks * blockSize + Self.pageSize - 1) / Self.pageSize
        if let shift = identity?.maximumDataTransferShift, shift > 0, pages > 1 << Int(shift) {
            throw NVMeError.invalidRequest("\(pages) pages is past MDTS (\(1 << Int(shift)) pages)")
        }
        var command = NVMeCommand(opcode: opcode)
        command.namespace = namespace
        command.prp1 = iova.rawValue
        command.cdw10 = UInt32(truncatingIfNeeded: lba)
        command.cdw11 = UInt32(truncatingIfNeeded: lba >> 32)
        command.cdw12 = UInt32(blocks - 1)
        if pages == 2 {
            command.prp2 = iova.rawValue + UInt64(Self.pageSize)
        } else if pages > 2, let list {
            for index in 1..<pages {
                unsafe list.address.storeBytes(of: (iova.rawValue + UInt64(index * Self.pageSize)).littleEndian, toByteOffset: 8 * (index - 1), as: UInt64.self)
            }
            command.prp2 = list.iova.rawValue
        }
        return command
    }

    /// A read or write that waits for its own completion (a PRP list for more than two
    /// pages, at most 513); other completions reaped meanwhile are lost to their submitters,
    /// so do not mix with ``submit(_:namespace:lba:blocks:blockSize:iova:)`` in flight.
    private func transfer(_ opcode: UInt8, namespace: UInt32, lba: UInt64, blocks: Int, blockSize: Int, iova: IOVA) throws {
        guard io != nil else { throw NVMeError.invalidRequest("no I/O queues: call createIOQueues first") }
        let pages = (blocks * blockSize + Self.pageSize - 1) / Self.pageSize
        var list: DMASlice?
        if pages > 2 {
            guard pages - 1 <= Self.pageSize / 8, let page = arena.allocate(Self.pageSize, alignment: Self.pageSize) else { throw NVMeError.outOfDMAMemory }
            list = page
        }
        defer { if let list { arena.free(list) } }
        let commandID = try submit(try command(opcode, namespace: namespace, lba: lba, blocks: blocks, blockSize: blockSize, iova: iova, list: list))
        var status: NVMeStatus?
        try waitUntil("the completion of I/O opcode 0x\(String(opcode, radix: 16))") {
            reapCompletions { id, answer in if id == commandID { status = answer } }
            return status != nil
        }
        guard status!.isSuccess else { throw NVMeError.commandFailed(opcode: opcode, status: status!) }
    }

    /// Deletes the I/O queues, shuts the controller down (CC.SHN normal, then CSTS.SHST
    /// complete) and disables it.
    public func shutdown() throws {
        if io != nil {
            var submission = NVMeCommand(opcode: NVMeOpcode.deleteSubmissionQueue)
            submission.cdw10 = 1
            _ = try execute(submission)
            outstanding = 0
            var completion = NVMeCommand(opcode: NVMeOpcode.deleteCompletionQueue)
            completion.cdw10 = 1
            _ = try execute(completion)
            io = nil
        }
        registers.write32(registers.read32(at: Register.configuration) | 1 << 14, at: Register.configuration)
        try waitUntil("CSTS.SHST complete") { (registers.readCompletion32(at: Register.status) >> 2) & 3 == 2 }
        try reset()
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

    /// Stores `command` at the tail and returns the new tail (for the doorbell).
    mutating func submit(_ command: NVMeCommand) -> Int {
        unsafe command.store(to: submission.address + submissionTail * 64)
        submissionTail = (submissionTail + 1) % depth
        return submissionTail
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
