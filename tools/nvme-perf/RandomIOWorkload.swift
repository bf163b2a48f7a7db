import Dispatch
import Histogram
import IOMMUFD
import NVMe

/// The I/O loop of `nvme-perf`, in the spirit of SPDK's `perf`: `queueDepth` commands of
/// one block each kept in flight on one I/O queue pair, each to a uniformly random aligned
/// offset of the namespace, every completion resubmitted from the same buffer with one
/// submission doorbell write per batch of completions; completions are polled by phase bit. Nothing is allocated per command: the buffers are
/// one DMA region carved into slots, the slot of a command is found through a table
/// indexed by command id, and latencies go into a preallocated histogram.
struct RandomIOWorkload {
    /// What to run.
    struct Parameters {
        var transfer: NVMeController.Transfer
        var queueDepth: Int
        /// Bytes per command (a multiple of the namespace's block size, at most two pages).
        var ioSize: Int
        /// Seconds measured.
        var seconds: Double
        /// Seconds run before the measurement starts, not counted.
        var rampSeconds: Double
        /// Seed of the offsets' generator (runs with the same seed visit the same offsets).
        var seed: UInt64
    }

    /// What one run measured.
    struct Outcome {
        /// Commands completed in the measured window.
        var completed: Int
        /// The measured window in nanoseconds.
        var elapsedNanoseconds: UInt64
        /// Submission-to-completion latency of every command completed in the window, in ns.
        var latencies: Histogram<UInt64>
        /// Completions with an error status (the run stops at the first one).
        var failed: NVMeStatus?

        /// Completed commands per second.
        var iops: Double { Double(completed) * 1e9 / Double(max(elapsedNanoseconds, 1)) }
    }

    /// The queue pair the workload owns.
    let queue: NVMeIOQueue
    let namespace: UInt32
    let identity: NVMeNamespaceIdentity
    /// Where the slots' buffers are: `queueDepth` page-aligned slots from here, mapped.
    let buffers: IOVA
    /// Their length in bytes.
    let buffersLength: Int

    /// Runs `parameters` and returns what was measured.
    func run(_ parameters: Parameters) throws -> Outcome {
        let blocks = parameters.ioSize / identity.blockSize
        let slotStride = (parameters.ioSize + NVMeController.pageSize - 1) / NVMeController.pageSize * NVMeController.pageSize
        let offsets = identity.blockCount / UInt64(blocks)
        precondition(blocks > 0 && offsets > 0 && buffersLength >= slotStride * parameters.queueDepth)
        var random = SplitMix64(seed: parameters.seed)
        var slotOfCommand = [Int32](repeating: -1, count: 1 << 16)
        var submittedAt = [UInt64](repeating: 0, count: parameters.queueDepth)
        var latencies = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
        var failed: NVMeStatus?

        // Queued without a doorbell; the loop rings once per batch. `now` is the batch's one
        // clock read, the submission time of every command the batch resubmits.
        func enqueue(slot: Int, now: UInt64) throws {
            let lba = random.next(below: offsets) * UInt64(blocks)
            let iova = IOVA(buffers.rawValue + UInt64(slot * slotStride))
            submittedAt[slot] = now
            let commandID = try queue.enqueue(parameters.transfer, namespace: namespace, lba: lba, blocks: blocks,
                                              blockSize: identity.blockSize, iova: iova)
            slotOfCommand[Int(commandID)] = Int32(slot)
        }

        let start = DispatchTime.now().uptimeNanoseconds
        let measureFrom = start + UInt64(parameters.rampSeconds * 1e9)
        let end = measureFrom + UInt64(parameters.seconds * 1e9)
        for slot in 0..<parameters.queueDepth { try enqueue(slot: slot, now: start) }
        queue.ringSubmissionDoorbell()
        var completed = 0
        var now = start
        var idlePolls = 0
        var resubmit: [Int] = []
        resubmit.reserveCapacity(parameters.queueDepth)
        // The clock is read once per batch of completions, and on idle polls only every
        // `idlePollsPerClockRead` of them (to end the run if the controller stops answering):
        // in a guest whose clock source is not the TSC every read is a system call.
        let idlePollsPerClockRead = 4096
        while now < end && failed == nil {
            resubmit.removeAll(keepingCapacity: true)
            queue.reapCompletions { commandID, status in
                let slot = Int(slotOfCommand[Int(commandID)])
                slotOfCommand[Int(commandID)] = -1
                guard status.isSuccess else { failed = status; return }
                resubmit.append(slot)
            }
            guard !resubmit.isEmpty else {
                idlePolls += 1
                if idlePolls == idlePollsPerClockRead {
                    idlePolls = 0
                    now = DispatchTime.now().uptimeNanoseconds
                }
                continue
            }
            idlePolls = 0
            now = DispatchTime.now().uptimeNanoseconds
            for slot in resubmit {
                if submittedAt[slot] >= measureFrom {
                    latencies.record(now - submittedAt[slot])
                    completed += 1
                }
                if now < end { try enqueue(slot: slot, now: now) }
            }
            queue.ringSubmissionDoorbell()
        }
        // Let what is in flight finish before the buffers can go.
        let drainDeadline = DispatchTime.now().uptimeNanoseconds + 10_000_000_000
        while queue.outstanding > 0 && DispatchTime.now().uptimeNanoseconds < drainDeadline {
            queue.reapCompletions { commandID, _ in slotOfCommand[Int(commandID)] = -1 }
        }
        // A command the controller never completed is a lost completion: the run fails
        // rather than report a rate from fewer commands in flight than asked.
        guard queue.outstanding == 0 else {
            throw NVMeError.timedOut("\(queue.outstanding) commands never completed (10 s after the run)")
        }
        return Outcome(completed: completed, elapsedNanoseconds: max(min(now, end), measureFrom) - measureFrom, latencies: latencies, failed: failed)
    }
}

/// SplitMix64: a small, fast generator for the offsets (no locking, no allocation).
struct SplitMix64 {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var value = state
        value = (value ^ (value >> 30)) &* 0xbf58_476d_1ce4_e5b9
        value = (value ^ (value >> 27)) &* 0x94d0_49bb_1331_11eb
        return value ^ (value >> 31)
    }

    /// A value in `0..<bound` (Lemire's multiply-shift; the bias is negligible here).
    mutating func next(below bound: UInt64) -> UInt64 {
        next().multipliedFullWidth(by: bound).high
    }
}
