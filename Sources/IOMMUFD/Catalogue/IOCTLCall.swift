import SystemPackage

/// Issues one ioctl whose argument is `command`, and turns a failure into an ``IOMMUError``
/// naming `operation`: the one place the catalogue files call ``SystemInterface/ioctl(_:_:_:)``
/// with a struct. `request` is the C constant of `operation` (passed as a constant so the hot
/// path does not consult the table; a test checks every pair). The pointer lives only inside
/// the call: the kernel reads and writes the command while the ioctl runs, never after. Reading `system` and the descriptor once and
/// passing them down keeps reference counting off the hot path.
@inlinable @inline(__always)
package func issueIOCTL<Command>(
    _ system: any SystemInterface, _ fd: Int32, _ request: UInt, _ operation: IOMMUOperation, _ command: inout Command,
    _ context: @autoclosure () -> IOMMUErrorContext, fileID: StaticString, line: Int
) throws(IOMMUError) {
    // The command's bytes are lent for the call only.
    let result = unsafe withUnsafeMutableBytes(of: &command) { bytes in unsafe system.ioctlResult(fd, request, bytes.baseAddress) }
    if result < 0 {
        throw IOMMUError(operation, Errno(rawValue: -result), context(), fileID: fileID, line: line)
    }
}

/// Issues an ioctl whose argument is not a struct: an integer, a pointer to bytes the
/// caller owns, or nothing. Returns the kernel's non-negative answer (a descriptor, a
/// version, a yes/no).
@inlinable
package func issueIOCTL(
    _ system: any SystemInterface, _ fd: Int32, _ request: UInt, _ operation: IOMMUOperation, argument: UnsafeMutableRawPointer?,
    _ context: @autoclosure () -> IOMMUErrorContext, fileID: StaticString, line: Int
) throws(IOMMUError) -> Int32 {
    let result = unsafe system.ioctlResult(fd, request, argument)
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
