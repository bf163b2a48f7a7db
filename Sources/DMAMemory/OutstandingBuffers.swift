import IOMMUFDSystem

/// Debug builds only: which of a pool's buffers are in a driver's hands, so that putting one
/// back twice (or putting back one that was never taken) stops the program at the second put,
/// instead of handing the buffer to two users later. Release builds have none of it: the
/// pool's get and put paths then compile to what they measure.
@usableFromInline
// @safe: its raw storage (the locked bitmap) is used only behind this interface.
@safe
final class OutstandingBuffers: Sendable {
    private let baseAddress: UInt
    private let stride: UInt
    private let held: LockedState<[Bool]>

    init(baseAddress: UInt, stride: Int, count: Int) {
        self.baseAddress = baseAddress
        self.stride = UInt(stride)
        unsafe held = unsafe LockedState([Bool](repeating: false, count: count))
    }

    /// The buffers at `addresses` go to the driver.
    @usableFromInline
    func handOut(_ addresses: UnsafePointer<UInt>, count: Int) {
        unsafe held.withLock { held in
            for index in 0..<count { unsafe held[Int((addresses[index] &- baseAddress) / stride)] = true }
        }
    }

    /// The buffers at `addresses` come back; stops the program when one of them is not out.
    @usableFromInline
    func takeBack(_ addresses: UnsafePointer<UInt>, count: Int) {
        unsafe held.withLock { held in
            for index in 0..<count {
                let slot = unsafe Int((addresses[index] &- baseAddress) / stride)
                precondition(held[slot], "buffer \(slot) of the pool was put back twice, or put back without being taken")
                held[slot] = false
            }
        }
    }
}
