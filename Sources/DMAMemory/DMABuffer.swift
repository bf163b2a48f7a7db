public import IOMMUFD

/// One DMA buffer from a pool: a plain value (virtual address, IOVA, length), so taking
/// and returning buffers involves no reference counting and no allocation.
///
/// It does not own the memory: the pool does. Give each buffer back exactly once, and
/// not after the pool is gone.
// @safe: the value is a handle; what can break memory safety is using its memory, and
// that goes through `address` and `bytes`, which are unsafe pointer types and are flagged
// where they are dereferenced.
@frozen
@safe
public struct DMABuffer: Hashable, @unchecked Sendable {
    /// Where the CPU sees the buffer.
    public let address: UnsafeMutableRawPointer
    /// Where the device sees it.
    public let iova: IOVA
    /// Its size in bytes.
    public let length: Int

    /// Creates a buffer view from the CPU `address`, the device's `iova` and the `length` in bytes; it owns nothing.
    /// Only pools make buffers: one cannot be forged from outside the module.
    @inlinable
    init(address: UnsafeMutableRawPointer, iova: IOVA, length: Int) {
        unsafe self.address = address
        self.iova = iova
        self.length = length
    }

    /// The buffer's bytes.
    @inlinable
    public var bytes: UnsafeMutableRawBufferPointer { unsafe UnsafeMutableRawBufferPointer(start: address, count: length) }

    /// Two buffers are equal when they are the same bytes as the same IOVA.
    @inlinable
    public static func == (lhs: DMABuffer, rhs: DMABuffer) -> Bool {
        unsafe lhs.address == rhs.address && lhs.iova == rhs.iova && lhs.length == rhs.length
    }

    /// Hashes the buffer's address, IOVA and length.
    @inlinable
    public func hash(into hasher: inout Hasher) {
        unsafe hasher.combine(address)
        hasher.combine(iova)
        hasher.combine(length)
    }
}
