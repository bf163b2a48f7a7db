import CIOMMUFD
import SystemPackage

/// What a catalogue function issues its ioctl through: the system, and whether that is the
/// real kernel called in place (``SystemInterface/issuesIOCTLsInPlace``), asked once when a
/// handle is made. A class, so that passing it is passing a reference the caller already
/// holds: the seam's existential, passed by value, was copied on entry (value-witness
/// calls), and asking it on every call costs a projection and a witness call; together they
/// were most of what the typed layer added to a successful map + unmap
/// (`iommufd-bench ioctl --success`).
@usableFromInline
package final class IOCTLSeam: Sendable {
    /// Whether calls go to the real kernel in place (``LinuxSystem/ioctlInPlace(_:_:_:)``).
    @usableFromInline package let inPlace: Bool
    /// The system every call goes to.
    @usableFromInline package let system: any SystemInterface
    /// The process the handle was made in (``SystemInterface/processGeneration``): in the
    /// child of a fork every call is refused before it reaches the kernel.
    @usableFromInline package let generation: UInt

    /// The seam of `system`, for a handle made now, in this process.
    @inlinable
    package init(_ system: any SystemInterface) {
        self.system = system
        inPlace = system.issuesIOCTLsInPlace
        generation = system.processGeneration
    }

    /// Whether this is still the process the handle was made in. In place it is one load
    /// of the counter the fork handler keeps; any other system is asked.
    @inlinable @inline(__always)
    package var isOwnProcess: Bool {
        inPlace ? generation == UInt(ciommufd_process_generation()) : generation == system.processGeneration
    }
}

extension IOCTLSeam {
    /// Refuses, before any system call, what a handle does without an ioctl (region reads
    /// and writes, BAR mappings) when it is used in the child of a fork.
    @inlinable
    package func requireOwnProcess(_ operation: IOMMUOperation, _ context: @autoclosure () -> IOMMUErrorContext, fileID: StaticString, line: Int) throws(IOMMUError) {
        guard isOwnProcess else { throw forkedChildRefusal(operation, context(), fileID: fileID, line: line) }
    }
}

/// The refusal of a call made through a handle in the child of a fork: the kernel would take
/// it (the descriptors are inherited), and it would act on the parent's objects.
@usableFromInline @inline(never)
func forkedChildRefusal(_ operation: IOMMUOperation, _ context: IOMMUErrorContext, fileID: StaticString, line: Int) -> IOMMUError {
    var context = context
    context.handleFromBeforeFork = true
    return IOMMUError(operation, .notPermitted, context, fileID: fileID, line: line)
}

/// Issues one ioctl whose argument is `command`, and turns a failure into an ``IOMMUError``
/// naming `operation`: the one place the catalogue files call ``SystemInterface/ioctl(_:_:_:)``
/// with a struct. `request` is the C constant of `operation` (passed as a constant so the hot
/// path does not consult the table; a test checks every pair). The pointer lives only inside
/// the call: the kernel reads and writes the command while the ioctl runs, never after. Reading `system` and the descriptor once and
/// passing them down keeps reference counting off the hot path.
@inlinable @inline(__always)
package func issueIOCTL<Command>(
    _ seam: IOCTLSeam, _ fd: Int32, _ request: UInt, _ operation: IOMMUOperation, _ command: inout Command,
    _ context: @autoclosure () -> IOMMUErrorContext, reportsMemlockLimit: Bool = false, fileID: StaticString, line: Int
) throws(IOMMUError) {
    // The command's bytes are lent for the call only. The real kernel is called in place:
    // no frame between the caller and the system call (see `LinuxSystem.ioctlInPlace`), and
    // the seam's existential is not touched. Any other system is reached out of line.
    guard seam.isOwnProcess else { throw forkedChildRefusal(operation, context(), fileID: fileID, line: line) }
    if seam.inPlace {
        let result = unsafe withUnsafeMutableBytes(of: &command) { bytes in unsafe LinuxSystem.ioctlInPlace(fd, request, bytes.baseAddress) }
        if result < 0 {
            if reportsMemlockLimit {
                throw withLinuxMemlockLimit(IOMMUError(operation, Errno(rawValue: -result), context(), fileID: fileID, line: line))
            }
            throw IOMMUError(operation, Errno(rawValue: -result), context(), fileID: fileID, line: line)
        }
    } else {
        try seamIOCTL(seam, fd, request, &command, operation, context(), reportsMemlockLimit: reportsMemlockLimit, fileID: fileID, line: line)
    }
}

/// `error` with the memlock limit in force when it is an `ENOMEM` of a map command issued in
/// place (only `LinuxSystem` issues in place, so the limit is read from it), so the message
/// can say what it is. Out of line: only failures get here.
@usableFromInline @inline(never)
func withLinuxMemlockLimit(_ error: IOMMUError) -> IOMMUError {
    guard error.errno == .noMemory else { return error }
    var error = error
    error.context.memlockLimit = (try? LinuxSystem().memoryLockLimit())?.current
    return error
}

/// The ioctl issued through the seam (`SystemInterface.ioctlResult`): MockKernel, or any
/// wrapper of the seam. The same errors as in place, the memlock limit read from the seam's
/// system. Out of line, and without a closure over the seam, so that the in-place path never
/// makes the caller keep a copy of it.
@usableFromInline @inline(never)
func seamIOCTL<Command>(
    _ seam: IOCTLSeam, _ fd: Int32, _ request: UInt, _ command: inout Command, _ operation: IOMMUOperation,
    _ context: @autoclosure () -> IOMMUErrorContext, reportsMemlockLimit: Bool, fileID: StaticString, line: Int
) throws(IOMMUError) {
    let system = seam.system
    let result = unsafe withUnsafeMutableBytes(of: &command) { bytes in unsafe system.ioctlResult(fd, request, bytes.baseAddress) }
    guard result < 0 else { return }
    var error = IOMMUError(operation, Errno(rawValue: -result), context(), fileID: fileID, line: line)
    if reportsMemlockLimit, error.errno == .noMemory {
        error.context.memlockLimit = (try? system.memoryLockLimit())?.current
    }
    throw error
}

/// Issues an ioctl whose argument is not a struct: an integer, a pointer to bytes the
/// caller owns, or nothing. Returns the kernel's non-negative answer (a descriptor, a
/// version, a yes/no).
@inlinable
package func issueIOCTL(
    _ seam: IOCTLSeam, _ fd: Int32, _ request: UInt, _ operation: IOMMUOperation, argument: UnsafeMutableRawPointer?,
    _ context: @autoclosure () -> IOMMUErrorContext, fileID: StaticString, line: Int
) throws(IOMMUError) -> Int32 {
    guard seam.isOwnProcess else { throw forkedChildRefusal(operation, context(), fileID: fileID, line: line) }
    let result = seam.inPlace ? unsafe LinuxSystem.ioctlInPlace(fd, request, argument)
                              : unsafe seam.system.ioctlResult(fd, request, argument)
    if result < 0 {
        throw IOMMUError(operation, Errno(rawValue: -result), context(), fileID: fileID, line: line)
    }
    return result
}

/// The answer of one try of an "ask the size, then ask again" exchange.
package enum SizedAnswer<Value> {
    /// The buffer was large enough.
    case complete(Value)
    /// The kernel needs this many bytes.
    case needs(byteCount: Int)
}

/// The one helper for the exchanges where the kernel says how much room it needs
/// (IOVA ranges, region info with capabilities, IOMMU info, hot-reset info, hardware info):
/// `attempt` is called with a zeroed, 8-byte aligned buffer of `initialByteCount` bytes,
/// then again with the size the kernel asked for, until it completes. The kernel may grow
/// its answer between two calls (a device attaches), so a few rounds are allowed.
package func withSizeNegotiation<Value>(
    initialByteCount: Int, operation: IOMMUOperation, fileID: StaticString, line: Int,
    _ attempt: (UnsafeMutableRawBufferPointer) throws(IOMMUError) -> SizedAnswer<Value>
) throws(IOMMUError) -> Value {
    var byteCount = max(initialByteCount, 8)
    for _ in 0..<8 {
        // The buffer lives for this try only; `attempt` may not keep it.
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: byteCount, alignment: 8)
        defer { unsafe buffer.deallocate() }
        unsafe buffer.initializeMemory(as: UInt8.self, repeating: 0)
        switch try unsafe attempt(buffer) {
        case .complete(let value):
            return value
        case .needs(let needed):
            guard needed > byteCount else {
                throw IOMMUError(operation, .ioError, IOMMUErrorContext(length: UInt64(needed)), fileID: fileID, line: line)
            }
            byteCount = needed
        }
    }
    // The answer kept growing: something changes it faster than it can be read.
    throw IOMMUError(operation, .resourceTemporarilyUnavailable, IOMMUErrorContext(length: UInt64(byteCount)), fileID: fileID, line: line)
}
