public import IOMMUFD

/// One DMA buffer from a pool: a plain value (virtual address, IOVA, length), so taking
/// and returning buffers involves no reference counting and no allocation.
///
/// It does not own the memory: the pool does. Give each buffer back exactly once, and
/// not after the pool is gone.
@frozen
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
        self.address = address
        self.iova = iova
        self.length = length
    }

    /// The buffer's bytes.
    @inlinable
    public var bytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: address, count: length) }
}
