public import IOMMUFDSystem
public import SystemPackage
import CIOMMUFD
#if canImport(Glibc)
import Glibc
#endif

// The SystemInterface conformance, the process: its id, clock, sleep and memlock limit.
extension MockKernel {
    public func processID() -> Int32 { unsafe state.withLock { $0.configuration.processID } }

    public var processGeneration: UInt { unsafe state.withLock { $0.processGeneration } }

    /// Continues the model as the child of a `fork()`: the process gets a new generation,
    /// so handles made before refuse to act (the kernel would let the child reach
    /// the parent's objects through the inherited descriptors). The model keeps one
    /// descriptor table, so what the child closes, the model closes: use it to test what a
    /// child's code does with the parent's handles, not what the parent sees afterwards.
    public func continueAsForkedChild() {
        unsafe state.withLock { state in state.processGeneration += 1 }
    }

    public func monotonicNanoseconds() -> UInt64 { LinuxSystem().monotonicNanoseconds() }

    public func sleep(nanoseconds: UInt64) { LinuxSystem().sleep(nanoseconds: nanoseconds) }

    public func memoryLockLimit() throws(Errno) -> ResourceLimit {
        unsafe try state.withLock { (state) throws(Errno) -> ResourceLimit in
            try state.run("getrlimit") { (state) throws(Errno) -> ResourceLimit in
                ResourceLimit(current: state.configuration.memlockLimit, maximum: state.configuration.memlockMaximum)
            }
        }
    }

    public func setMemoryLockLimit(_ limit: ResourceLimit) throws(Errno) {
        unsafe try state.withLock { (state) throws(Errno) in
            try state.run("setrlimit") { (state) throws(Errno) in
                let raisesMaximum = (limit.maximum ?? .max) > (state.configuration.memlockMaximum ?? .max)
                if raisesMaximum && !state.configuration.hasSysResource { throw .notPermitted }
                if (limit.current ?? .max) > (limit.maximum ?? .max) { throw .invalidArgument }
                state.configuration.memlockLimit = limit.current
                state.configuration.memlockMaximum = limit.maximum
            }
        }
    }
}
