import DMAMemory
import Foundation
import IOMMUFD
import MockKernel
@testable import NVMe
import Synchronization
import Testing
import VFIO

/// I/O queue pairs made on demand (`makeIOQueue`), one per thread with its own command ids,
/// doorbells and memory, on MockKernel's NVMe controller; Set Features Number of Queues;
/// Flush and Write Zeroes; deleting a queue.
@Suite("NVMe I/O queue pairs on MockKernel's controller")
struct NVMeIOQueueTests {
    /// Fills `slice` with a pattern of `seed` and returns it.
    static func fill(_ slice: DMASlice, _ length: Int, seed: Int) {
        for index in 0..<length { slice.address.storeBytes(of: UInt8(truncatingIfNeeded: index &* 131 &+ seed), toByteOffset: index, as: UInt8.self) }
    }

    /// How many of `length` bytes differ between two slices.
    static func differing(_ one: DMASlice, _ other: DMASlice, _ length: Int) -> Int {
        (0..<length).filter { one.address.load(fromByteOffset: $0, as: UInt8.self) != other.address.load(fromByteOffset: $0, as: UInt8.self) }.count
    }

    @Test("Number of Queues grants 64 pairs; four queues, each driven by its own thread, write then read back their own LBAs byte for byte; Set Features after a queue exists is a Command Sequence Error with DNR")
    func queuePerThread() throws {
        try NVMeDriverTests.withController { controller, data in
            #expect(try controller.requestIOQueues(4) == 64, "QEMU grants max_ioqpairs whatever is asked")
            let queues = try (0..<4).map { _ in try controller.makeIOQueue(depth: 8) }
            #expect(queues.map(\.id) == [1, 2, 3, 4])
            let late = nvmeCommandFailure("Set Features after a queue was made") { _ = try controller.requestIOQueues(8) }?.status
            #expect(late?.codeType == 0 && late?.code == 0x0c && late?.doNotRetry == true, "\(String(describing: late))")
            let buffers = try (0..<4).map { _ in (try #require(data.allocate(8192, alignment: 4096)), try #require(data.allocate(8192, alignment: 4096))) }
            let failures = Mutex<[String]>([])
            DispatchQueue.concurrentPerform(iterations: 4) { thread in
                let queue = queues[thread], (outbound, inbound) = buffers[thread]
                do {
                    for round in 0..<20 {
                        let lba = UInt64(thread * 512 + round * 16)
                        Self.fill(outbound, 8192, seed: thread * 1000 + round)
                        try queue.write(namespace: 1, lba: lba, blocks: 16, blockSize: 512, from: outbound.iova)
                        inbound.address.initializeMemory(as: UInt8.self, repeating: 0, count: 8192)
                        try queue.read(namespace: 1, lba: lba, blocks: 16, blockSize: 512, into: inbound.iova)
                        let wrong = Self.differing(outbound, inbound, 8192)
                        if wrong > 0 { failures.withLock { $0.append("queue \(queue.id) round \(round): \(wrong) bytes differ") } }
                    }
                } catch {
                    failures.withLock { $0.append("queue \(queue.id): \(error)") }
                }
            }
            #expect(failures.withLock { $0 } == [])
            for (outbound, inbound) in buffers { data.free(outbound); data.free(inbound) }
            try controller.shutdown()
            #expect(throws: NVMeError.self, "a queue refuses submissions once the controller deleted it") {
                _ = try queues[0].submit(.read, namespace: 1, lba: 0, blocks: 1, blockSize: 512, iova: IOVA(0))
            }
        }
    }

    @Test("Write Zeroes reads back as zeroes without touching its neighbours; Flush succeeds; both refuse an invalid namespace")
    func writeZeroesAndFlush() throws {
        try NVMeDriverTests.withController { controller, data in
            let queue = try controller.makeIOQueue(depth: 4)
            let outbound = try #require(data.allocate(16384, alignment: 4096)), inbound = try #require(data.allocate(16384, alignment: 4096))
            Self.fill(outbound, 16384, seed: 7)
            try queue.write(namespace: 1, lba: 100, blocks: 32, blockSize: 512, from: outbound.iova)
            try queue.writeZeroes(namespace: 1, lba: 108, blocks: 8)
            try queue.flush(namespace: 1)
            try queue.read(namespace: 1, lba: 100, blocks: 32, blockSize: 512, into: inbound.iova)
            let zeroed = 8 * 512..<16 * 512
            let wrongZeroes = zeroed.filter { inbound.address.load(fromByteOffset: $0, as: UInt8.self) != 0 }.count
            let wrongNeighbours = (0..<16384).filter { !zeroed.contains($0) && inbound.address.load(fromByteOffset: $0, as: UInt8.self) != outbound.address.load(fromByteOffset: $0, as: UInt8.self) }.count
            #expect(wrongZeroes == 0 && wrongNeighbours == 0, "\(wrongZeroes) bytes not zero, \(wrongNeighbours) neighbours changed")
            for attempt in [{ try queue.flush(namespace: 9) }, { try queue.writeZeroes(namespace: 9, lba: 0, blocks: 1) }] {
                let refused = nvmeCommandFailure("namespace 9", attempt)?.status
                #expect(refused?.codeType == 0 && refused?.code == 0x0b)
            }
            data.free(outbound); data.free(inbound)
            try controller.shutdown()
        }
    }

    @Test("a deleted queue refuses submissions and its id is the next queue's; queue depths above 1 in flight on two queues at once keep their own command ids")
    func deleteAndReuse() throws {
        try NVMeDriverTests.withController { controller, data in
            let first = try controller.makeIOQueue(depth: 16), second = try controller.makeIOQueue(depth: 16)
            let page = try #require(data.allocate(4096, alignment: 4096))
            var firstIDs: [UInt16] = [], secondIDs: [UInt16] = []
            for index in 0..<10 {
                firstIDs.append(try first.submit(.read, namespace: 1, lba: UInt64(index), blocks: 8, blockSize: 512, iova: page.iova))
                secondIDs.append(try second.submit(.read, namespace: 1, lba: UInt64(index), blocks: 8, blockSize: 512, iova: page.iova))
            }
            #expect(firstIDs == secondIDs, "each queue counts its own command ids")
            var reapedFirst: [UInt16] = [], reapedSecond: [UInt16] = []
            while reapedFirst.count < 10 || reapedSecond.count < 10 {
                first.reapCompletions { id, status in #expect(status.isSuccess); reapedFirst.append(id) }
                second.reapCompletions { id, status in #expect(status.isSuccess); reapedSecond.append(id) }
            }
            #expect(reapedFirst == firstIDs && reapedSecond == secondIDs)
            try controller.deleteIOQueue(first)
            #expect(throws: NVMeError.self) { _ = try first.submit(.read, namespace: 1, lba: 0, blocks: 1, blockSize: 512, iova: page.iova) }
            let third = try controller.makeIOQueue(depth: 4)
            #expect(third.id == first.id, "the lowest free queue id")
            try third.read(namespace: 1, lba: 0, blocks: 8, blockSize: 512, into: page.iova)
            data.free(page)
            try controller.shutdown()
        }
    }

    @Test("completion interrupts: a queue on MSI-X vector 1 takes one interrupt per completion in waitForCompletions; a polled queue raises none and refuses to wait; a vector not wired is refused")
    func completionInterrupts() throws {
        try NVMeDriverTests.withController { controller, data in
            try controller.enableCompletionInterrupts(vectors: 2)
            let signalled = try controller.makeIOQueue(depth: 8, interruptVector: 1), polled = try controller.makeIOQueue(depth: 8)
            #expect(throws: NVMeError.self) { _ = try controller.makeIOQueue(depth: 8, interruptVector: 2) }
            let page = try #require(data.allocate(4096, alignment: 4096))
            for round in 0..<16 {
                let id = try signalled.submit(.read, namespace: 1, lba: UInt64(round * 8), blocks: 8, blockSize: 512, iova: page.iova)
                var reaped: [UInt16] = []
                let count = try signalled.waitForCompletions(timeout: 2) { commandID, status in #expect(status.isSuccess); reaped.append(commandID) }
                #expect(count == 1 && reaped == [id])
            }
            #expect(signalled.interruptsTaken == 16, "one MSI-X interrupt per completion")
            _ = try polled.submit(.read, namespace: 1, lba: 0, blocks: 8, blockSize: 512, iova: page.iova)
            #expect(polled.reapCompletions { _, _ in } == 1)
            #expect(throws: NVMeError.self) { try polled.waitForCompletions(timeout: 0.01) { _, _ in } }
            #expect(try signalled.waitForCompletions(timeout: 0.05) { _, _ in } == 0, "nothing in flight: the wait times out")
            #expect(signalled.interruptsTaken == 16, "the polled queue's completion raised nothing on vector 1")
            data.free(page)
            try controller.shutdown()
        }
    }

    @Test("enqueue stores commands without a doorbell: the controller runs none until ringSubmissionDoorbell, then all of them")
    func batchedDoorbell() throws {
        try NVMeDriverTests.withController { controller, data in
            let queue = try controller.makeIOQueue(depth: 16)
            let page = try #require(data.allocate(4096, alignment: 4096))
            let ids = try (0..<5).map { index in try queue.enqueue(.read, namespace: 1, lba: UInt64(index * 8), blocks: 8, blockSize: 512, iova: page.iova) }
            #expect(queue.outstanding == 5)
            #expect(queue.reapCompletions { _, _ in } == 0, "no doorbell, no command run")
            queue.ringSubmissionDoorbell()
            var reaped: [UInt16] = []
            while reaped.count < 5 { queue.reapCompletions { id, status in #expect(status.isSuccess); reaped.append(id) } }
            #expect(reaped == ids)
            data.free(page)
            try controller.shutdown()
        }
    }

    @Test("Abort: the controller declines (DW0 bit 0 set) and the command completes, as QEMU 7.2; a queue the controller no longer has is an Invalid Field with DNR")
    func abort() throws {
        try NVMeDriverTests.withController { controller, data in
            let queue = try controller.makeIOQueue(depth: 8), gone = try controller.makeIOQueue(depth: 8)
            let page = try #require(data.allocate(4096, alignment: 4096))
            let id = try queue.submit(.read, namespace: 1, lba: 0, blocks: 8, blockSize: 512, iova: page.iova)
            #expect(try controller.abort(commandID: id, queue: queue) == false, "the controller declines to abort")
            var reaped: [UInt16] = []
            let deadline = Date().addingTimeInterval(5)
            while reaped.isEmpty && Date() < deadline { queue.reapCompletions { commandID, status in #expect(status.isSuccess); reaped.append(commandID) } }
            #expect(reaped == [id], "the command completes as if never asked about")
            try controller.deleteIOQueue(gone)
            let refused = nvmeCommandFailure("Abort on a deleted queue") { _ = try controller.abort(commandID: 1, queue: gone) }?.status
            #expect(refused?.codeType == 0 && refused?.code == 0x02 && refused?.doNotRetry == true, "\(String(describing: refused))")
            data.free(page)
            try controller.shutdown()
        }
    }

    @Test("a command that never completes: Abort is declined, so the driver resets the controller; the command is reported Command Aborted By Host, the same queue objects work again (ids, vector and all), the namespace keeps what was written")
    func resetAfterDeclinedAbort() throws {
        try NVMeDriverTests.withController { controller, data, faults, _ in
            #expect(try controller.requestIOQueues(4) == 64)
            try controller.enableCompletionInterrupts(vectors: 2)
            let queue = try controller.makeIOQueue(depth: 8), signalled = try controller.makeIOQueue(depth: 8, interruptVector: 1)
            let outbound = try #require(data.allocate(4096, alignment: 4096)), inbound = try #require(data.allocate(4096, alignment: 4096))
            Self.fill(outbound, 4096, seed: 3)
            try queue.write(namespace: 1, lba: 40, blocks: 8, blockSize: 512, from: outbound.iova)

            faults.dropNextIO()
            let lostID = try queue.submit(.read, namespace: 1, lba: 40, blocks: 8, blockSize: 512, iova: inbound.iova)
            #expect(queue.reapCompletions { _, _ in } == 0, "the controller hangs on it")
            var reported: [UInt16: NVMeStatus] = [:]
            let recovery = try controller.recoverTimedOutCommand(lostID, on: queue) { id, status in reported[id] = status }
            #expect(recovery == .reset(lost: 1))
            #expect(reported == [lostID: .abortedByHost])
            #expect(queue.outstanding == 0)

            #expect(controller.grantedIOQueues == 64, "Number of Queues asked again after the reset")
            inbound.address.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
            try queue.read(namespace: 1, lba: 40, blocks: 8, blockSize: 512, into: inbound.iova)
            #expect(Self.differing(outbound, inbound, 4096) == 0, "what was written before the reset reads back through the same queue")
            let id = try signalled.submit(.read, namespace: 1, lba: 0, blocks: 8, blockSize: 512, iova: inbound.iova)
            var reaped: [UInt16] = []
            var statuses: [NVMeStatus] = []
            let count = try signalled.waitForCompletions(timeout: 2) { commandID, status in reaped.append(commandID); statuses.append(status) }
            #expect(count == 1 && reaped == [id] && statuses.allSatisfy(\.isSuccess))
            #expect(signalled.interruptsTaken == 1, "the re-created completion queue signals its vector again")
            data.free(outbound); data.free(inbound)
            try controller.shutdown()
        }
    }

    @Test("a controller reset with completions posted and not yet reaped: they are reported with their own status, not as lost, and only the command the controller dropped is lost")
    func resetKeepsPostedCompletions() throws {
        try NVMeDriverTests.withController { controller, data, faults, _ in
            let first = try controller.makeIOQueue(depth: 8), second = try controller.makeIOQueue(depth: 8)
            let page = try #require(data.allocate(4096, alignment: 4096))
            let posted = try (0..<3).map { index in try first.submit(.read, namespace: 1, lba: UInt64(index * 8), blocks: 8, blockSize: 512, iova: page.iova) }
            faults.failNextIO(codeType: 2, code: 0x81)
            let failed = try second.submit(.read, namespace: 1, lba: 0, blocks: 8, blockSize: 512, iova: page.iova)
            faults.dropNextIO()
            let dropped = try second.submit(.read, namespace: 1, lba: 8, blocks: 8, blockSize: 512, iova: page.iova)
            #expect(try controller.resetController() == 1, "one command lost in all queues")
            var fromFirst: [UInt16: NVMeStatus] = [:], fromSecond: [UInt16: NVMeStatus] = [:]
            #expect(first.reapCompletions { id, status in fromFirst[id] = status } == 3)
            #expect(second.reapCompletions { id, status in fromSecond[id] = status } == 2)
            #expect(fromFirst == Dictionary(uniqueKeysWithValues: posted.map { ($0, NVMeStatus(codeType: 0, code: 0)) }))
            #expect(fromSecond == [failed: NVMeStatus(codeType: 2, code: 0x81), dropped: .abortedByHost])
            #expect(first.reapCompletions { _, _ in } == 0 && first.outstanding == 0 && second.outstanding == 0, "reported once")
            try second.read(namespace: 1, lba: 0, blocks: 8, blockSize: 512, into: page.iova)
            data.free(page)
            try controller.shutdown()
        }
    }

    @Test("a completion queue on vector 65 is refused with Invalid Interrupt Vector (SCT 1, SC 0x08) and DNR, as QEMU 7.2's nvme has 65 vectors")
    func invalidInterruptVector() throws {
        try NVMeDriverTests.withController { controller, data in
            let page = try #require(data.allocate(4096, alignment: 4096))
            defer { data.free(page) }
            // Past the driver, which refuses a vector it did not wire: the admin command as is.
            var command = NVMeCommand(opcode: NVMeOpcode.createCompletionQueue)
            command.prp1 = page.iova.rawValue
            command.cdw10 = 1 | 3 << 16
            command.cdw11 = 1 | 2 | 65 << 16  // physically contiguous, IEN, IV 65
            let refused = nvmeCommandFailure("a completion queue on vector 65") { _ = try controller.execute(command) }?.status
            #expect(refused?.codeType == 1 && refused?.code == 0x08 && refused?.doNotRetry == true, "\(String(describing: refused))")
            try controller.shutdown()
        }
    }

    @Test("a polled queue tells the controller its completion head only when the controller needs the room: 300 commands at queue depth 1 and then 300 at depth 7 on an 8-entry queue all complete, while the controller posts nothing into a full completion queue")
    func deferredCompletionHead() throws {
        try NVMeDriverTests.withController { controller, data in
            let queue = try controller.makeIOQueue(depth: 8)
            let page = try #require(data.allocate(4096, alignment: 4096))
            for inFlight in [1, 7] {
                var submitted = 0, completed = 0
                while completed < 300 {
                    while submitted < 300 && submitted - completed < inFlight {
                        _ = try queue.enqueue(.read, namespace: 1, lba: UInt64(submitted % 200 * 8), blocks: 8, blockSize: 512, iova: page.iova)
                        submitted += 1
                    }
                    queue.ringSubmissionDoorbell()
                    let reaped = queue.reapCompletions { _, status in #expect(status.isSuccess) }
                    #expect(reaped > 0, "the controller stopped posting (completion queue full at \(completed) of 300, depth \(inFlight))")
                    if reaped == 0 { break }
                    completed += reaped
                }
                #expect(completed == 300 && queue.outstanding == 0)
            }
            data.free(page)
            try controller.shutdown()
        }
    }

    @Test("the controller posts nothing into a full completion queue and posts what it held once the head doorbell makes room, as QEMU 7.2's nvme")
    func fullCompletionQueue() throws {
        try NVMeDriverTests.withController { controller, data in
            let queue = try controller.makeIOQueue(depth: 4)
            let page = try #require(data.allocate(4096, alignment: 4096))
            func posted(_ count: Int) -> Bool {
                let deadline = Date().addingTimeInterval(5)
                while queue.pair.postedCompletions() < count && Date() < deadline { Thread.sleep(forTimeInterval: 0.001) }
                return queue.pair.postedCompletions() == count
            }
            for index in 0..<3 { _ = try queue.enqueue(.read, namespace: 1, lba: UInt64(index * 8), blocks: 8, blockSize: 512, iova: page.iova) }
            queue.ringSubmissionDoorbell()
            #expect(posted(3))
            // Taken without telling the controller: from its side the queue holds 3 of 4, full.
            for _ in 0..<3 { #expect((queue.pair.nextCompletion()?.status ?? 0xffff) & 0xfffe == 0, "success, phase aside") }
            var command = try NVMeController.dataCommand(NVMeOpcode.read, namespace: 1, lba: 0, blocks: 8, blockSize: 512, iova: page.iova, list: nil, maximumDataTransferShift: nil)
            command.commandID = 0x99
            let tail = queue.pair.submit(command)
            queue.doorbells.writeDoorbell32(UInt32(tail), at: queue.submissionDoorbell)
            Thread.sleep(forTimeInterval: 0.2)
            #expect(queue.pair.postedCompletions() == 0, "nothing posted into a full completion queue")
            queue.doorbells.writeDoorbell32(UInt32(queue.pair.completionHead), at: queue.completionDoorbell)
            #expect(posted(1), "posted once the head doorbell made room")
            #expect(queue.pair.nextCompletion()?.commandID == 0x99)
            data.free(page)
            // The queue's own count is off (its completions were taken behind its back): the
            // controller deletes it without waiting.
            try controller.shutdown()
        }
    }
}
