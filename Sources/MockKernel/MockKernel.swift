public import IOMMUFDSystem
public import SystemPackage

/// A model of the Linux kernel's iommufd (and the process memory around it) that
/// implements `SystemInterface`, so the same typed code path, struct marshalling
/// included, runs in CI without `/dev/iommu`.
///
/// It is a model, not a script: object ids and types, per-IOAS interval maps,
/// kernel-chosen IOVAs aligned as the kernel aligns them, reserved and allowed
/// ranges, the whole-area unmap rule, the `size`-field ABI rules, selftest mock
/// domains with their aperture and I/O page size, pinned-page accounting against a
/// memlock limit, and exact errnos, following `drivers/iommu/iommufd/` of Linux 7.3.
///
/// Memory made with ``mmap(address:length:protection:flags:fd:offset:)`` is real, so a
/// mock device can read and write what a mapping points at (``translate(iommufd:ioas:iova:length:write:)``).
///
/// Every call is recorded in ``trace``; ``failNthCall(_:with:operation:)`` makes a chosen
/// call fail before it has any effect; ``leaks`` reports what is still held.
// @safe: the model's raw storage (the locked state) is used only behind this interface;
// the seam's calls that take raw pointers are unsafe at their own declarations.
@safe
public final class MockKernel: SystemInterface, Sendable {
    /// The model, seen from this instance's process.
    let state: ProcessBoundState
    /// Whether this instance is a process made by ``spawnProcess()``, which ends with it.
    private let isSpawned: Bool
    /// What mock devices do on register accesses (see ``onRegisterWrite(_:bar:offsets:_:)``).
    var registerHandlers: LockedState<RegisterHandlers> { unsafe state.shared.registerHandlers }

    /// Creates a model of a machine described by `configuration`: no descriptors open, no objects, no mappings.
    public init(configuration: Configuration = Configuration()) {
        unsafe state = unsafe ProcessBoundState(shared: SharedKernel(KernelState(configuration: configuration)), pid: configuration.processID)
        isSpawned = false
    }

    private init(sharing shared: SharedKernel, pid: Int32) {
        unsafe state = unsafe ProcessBoundState(shared: shared, pid: pid)
        isSpawned = true
    }

    /// A second process on the same model: it shares the kernel (contexts, devices, groups,
    /// containers, memfds, the per-user memlock count) but has its own descriptor table,
    /// memory, `mm` counters (VmPin, VmLck) and memlock limits, copied from this one's. It
    /// opens nothing; descriptors cannot be passed to it. When the returned instance goes,
    /// the process exits: its descriptors close and its memory is unmapped.
    public func spawnProcess() -> MockKernel {
        let pid = unsafe state.withLock { $0.addProcess() }
        return MockKernel(sharing: unsafe state.shared, pid: pid)
    }

    deinit {
        guard isSpawned else { return }
        // The process exits: the kernel closes its files and tears down its mm.
        let (descriptors, areas) = unsafe state.withLock { state in (Array(state.descriptors.keys), state.areasOfMemory.map { ($0.start, $0.length) }) }
        for fd in descriptors { try? close(fd) }
        for (start, length) in areas { unsafe _ = try? munmap(UnsafeMutableRawPointer(bitPattern: UInt(start))!, length: Int(length)) }
        unsafe state.withLock { $0.removeProcess(unsafe state.pid) }
    }

    /// Changes the modelled machine (for example the memlock limit) between calls.
    public func reconfigure(_ change: (inout Configuration) -> Void) {
        unsafe state.withLock { change(&$0.configuration) }
    }

    // MARK: Observability

    /// One call into the model.
    public struct Call: Sendable, Hashable, CustomStringConvertible {
        /// `open`, `close`, `mmap`..., or the ioctl's kernel name such as `IOMMU_IOAS_MAP`.
        public var name: String
        /// The errno the call ended with, `nil` on success.
        public var result: Errno?
        public var description: String { result.map { "\(name) -> \($0)" } ?? name }
    }

    /// Every call so far, in order.
    public var trace: [Call] { unsafe state.withLock { $0.trace } }

    /// The commands the model refused because it does not model what the kernel does past
    /// their argument checks (answered `ENOSYS`, which the kernel never gives for them), in
    /// order. Empty in a test that only uses what the model knows; a test that leans on one
    /// of these learns nothing about the kernel, so it should fail.
    public var unmodelledCalls: [IOMMUOperation] { unsafe state.withLock { $0.unmodelledCalls } }

    /// Forgets the trace.
    public func clearTrace() { unsafe state.withLock { $0.trace.removeAll() } }

    /// What the process still holds in the model.
    public struct Leaks: Sendable, Hashable, CustomStringConvertible {
        /// Open descriptors of any kind.
        public var openFileDescriptors: Int
        /// Live iommufd objects over all contexts.
        public var liveObjects: Int
        /// Pages charged against the memlock limit.
        public var pinnedPages: UInt64
        /// Live `mmap`s.
        public var memoryMappings: Int
        /// Memory the process unmapped (or whose memfd it closed) that pins still keep alive.
        public var retainedMemory: Int = 0

        /// Whether nothing is held: no descriptor, object, pinned page, mapping or retained memory.
        public var isEmpty: Bool {
            openFileDescriptors == 0 && liveObjects == 0 && pinnedPages == 0 && memoryMappings == 0 && retainedMemory == 0
        }

        public var description: String {
            "fds=\(openFileDescriptors) objects=\(liveObjects) pinned-pages=\(pinnedPages) mmaps=\(memoryMappings) retained=\(retainedMemory)"
        }
    }

    /// The leak counters.
    public var leaks: Leaks {
        unsafe state.withLock { state in
            Leaks(
                openFileDescriptors: state.descriptors.count,
                liveObjects: state.contexts.values.reduce(0) { $0 + $1.objects.count },
                pinnedPages: state.chargedPages,
                memoryMappings: state.areasOfMemory.count,
                retainedMemory: state.retainedMemoryCount)
        }
    }

    /// Pages currently pinned by iommufd (charged or not), over all contexts.
    public var pinnedPageCount: UInt64 {
        unsafe state.withLock { state in
            state.contexts.values.reduce(0) { total, context in
                total + context.pinned.values.reduce(0) { $0 + $1.count }
            }
        }
    }

    /// Descriptors that were opened without `O_CLOEXEC` (must stay zero).
    public var descriptorsWithoutCloseOnExec: Int { unsafe state.withLock { $0.descriptorsWithoutCloexec } }

    // MARK: Fault injection

    /// A rule that makes one future call fail.
    public struct FaultRule: Sendable, Hashable {
        /// The call to match: `nil` for any call, otherwise a name as in ``Call/name``.
        public var operation: String?
        /// Fail the `n`-th matching call from now (1 = the next one).
        public var remaining: Int
        /// The errno the matched call fails with.
        public var errno: Errno
    }

    /// Makes the `n`-th call from now (of any operation, or of `operation` only) fail with `errno`,
    /// before it has any effect. `close` still releases the descriptor, as Linux does.
    public func failNthCall(_ n: Int, with errno: Errno, operation: String? = nil) {
        precondition(n >= 1, "calls are counted from 1")
        unsafe state.withLock { $0.faults.append(FaultRule(operation: operation, remaining: n, errno: errno)) }
    }

    /// Removes every pending fault rule.
    public func clearFaults() { unsafe state.withLock { $0.faults.removeAll() } }

    /// The number of calls made so far (all kinds).
    public var callCount: Int { unsafe state.withLock { $0.totalCalls } }
}

extension KernelState {
    /// Counts a call, consults the fault rules and records the call in the trace.
    /// Returns the injected errno when the call must fail without effect.
    mutating func enter(_ name: String) -> Errno? {
        totalCalls += 1
        callCounts[name, default: 0] += 1
        var injected: Errno?
        for index in faults.indices {
            guard faults[index].operation == nil || faults[index].operation == name else { continue }
            faults[index].remaining -= 1
            if faults[index].remaining == 0 && injected == nil { injected = faults[index].errno }
        }
        faults.removeAll { $0.remaining <= 0 }
        return injected
    }

    mutating func record(_ name: String, _ result: Errno?) {
        trace.append(MockKernel.Call(name: name, result: result))
    }
}
