public import IOMMUFDSystem
public import SystemPackage
import CIOMMUFD
#if canImport(Glibc)
import Glibc
#endif

// The SystemInterface conformance, the process: its id, clock, sleep and memlock limit.
extension MockKernel {
    public func processID() -> Int32 { unsafe state.withLock { $0.configuration.processID } }

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
