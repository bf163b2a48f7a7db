import IOMMUFDSystem

// Processes of the model. The kernel's objects (iommufd contexts, VFIO devices, groups and
// containers, memfds, the per-user memlock count) are shared; what a process owns (its
// descriptor table, its memory, its mm's counters, its limits) is swapped in when one of
// its calls runs. Every MockKernel instance is one process: the first is made with the
// model, more with ``MockKernel/spawnProcess()``.

/// What one process owns.
struct ProcessState {
    var descriptors: [Int32: OpenDescriptor] = [:]
    var areasOfMemory: [VirtualMemoryArea] = []
    var allocations: [UInt: MemoryAllocation] = [:]
    var mmLockedPages: UInt64 = 0
    var pinnedVMPages: UInt64 = 0
    var processGeneration: UInt = 0
    var descriptorsWithoutCloexec = 0
    var memlockLimit: UInt64?
    var memlockMaximum: UInt64?
}

extension KernelState {
    /// Makes `pid` the running process (a no-op when it is).
    mutating func switchToProcess(_ pid: Int32) {
        guard pid != configuration.processID, let next = waitingProcesses.removeValue(forKey: pid) else { return }
        waitingProcesses[configuration.processID] = takeRunningProcess()
        load(next, as: pid)
    }

    /// A new process with nothing open and the running one's limits; returns its id.
    mutating func addProcess() -> Int32 {
        let pid = max(configuration.processID, waitingProcesses.keys.max() ?? 0) + 1
        waitingProcesses[pid] = ProcessState(memlockLimit: configuration.memlockLimit, memlockMaximum: configuration.memlockMaximum)
        return pid
    }

    /// Forgets process `pid`, which has closed and unmapped everything; another one runs.
    mutating func removeProcess(_ pid: Int32) {
        if pid == configuration.processID {
            guard let other = waitingProcesses.keys.min(), let next = waitingProcesses.removeValue(forKey: other) else { return }
            _ = takeRunningProcess()
            load(next, as: other)
        } else {
            waitingProcesses[pid] = nil
        }
    }

    private mutating func takeRunningProcess() -> ProcessState {
        let taken = ProcessState(descriptors: descriptors, areasOfMemory: areasOfMemory, allocations: allocations,
                                 mmLockedPages: mmLockedPages, pinnedVMPages: pinnedVMPages, processGeneration: processGeneration,
                                 descriptorsWithoutCloexec: descriptorsWithoutCloexec,
                                 memlockLimit: configuration.memlockLimit, memlockMaximum: configuration.memlockMaximum)
        descriptors = [:]
        areasOfMemory = []
        allocations = [:]
        return taken
    }

    private mutating func load(_ process: ProcessState, as pid: Int32) {
        descriptors = process.descriptors
        areasOfMemory = process.areasOfMemory
        allocations = process.allocations
        mmLockedPages = process.mmLockedPages
        pinnedVMPages = process.pinnedVMPages
        processGeneration = process.processGeneration
        descriptorsWithoutCloexec = process.descriptorsWithoutCloexec
        configuration.memlockLimit = process.memlockLimit
        configuration.memlockMaximum = process.memlockMaximum
        configuration.processID = pid
    }

    /// Host memory of every process, for the model's own end.
    var allProcessAllocations: [(UInt, MemoryAllocation)] {
        Array(allocations) + waitingProcesses.values.flatMap { Array($0.allocations) }
    }
}

/// The model's shared state seen from one process: every access first makes that process
/// the running one, so the model's code sees one process at a time.
// @unsafe: it hands out the locked state, as LockedState does.
@unsafe
struct ProcessBoundState: Sendable {
    let shared: SharedKernel
    let pid: Int32

    func withLock<Result, Failure: Error>(_ body: (inout KernelState) throws(Failure) -> Result) throws(Failure) -> Result {
        unsafe try shared.state.withLock { (state) throws(Failure) -> Result in
            state.switchToProcess(unsafe pid)
            return try body(&state)
        }
    }

    func wait<Answer>(timeoutNanoseconds: UInt64?, until ready: (inout KernelState) -> Answer?) -> Answer? {
        unsafe shared.state.wait(timeoutNanoseconds: timeoutNanoseconds) { state in
            state.switchToProcess(unsafe pid)
            return ready(&state)
        }
    }

    func broadcast() { unsafe shared.state.broadcast() }
}

/// The kernel all processes of one model share, and what it frees when the last goes.
// @safe: its locked states are used only through their own interfaces.
@safe
final class SharedKernel: Sendable {
    let state: LockedState<KernelState>
    /// What mock devices do on register accesses (see ``MockKernel/onRegisterWrite(_:bar:offsets:_:)``).
    let registerHandlers = unsafe LockedState(RegisterHandlers())

    init(_ state: KernelState) {
        unsafe self.state = unsafe LockedState(state)
    }

    deinit {
        unsafe state.withLock { state in
            for (base, allocation) in state.allProcessAllocations { allocation.resource(at: base).release() }
            for file in state.memoryFiles.values { file.hostResources.forEach { $0.release() } }
            for device in state.vfio.devices.values {
                for base in device.barStorage where base != 0 { unsafe UnsafeMutableRawPointer(bitPattern: base)?.deallocate() }
            }
        }
    }
}
