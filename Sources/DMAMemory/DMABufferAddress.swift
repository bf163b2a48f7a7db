/// A pool buffer named by its virtual address alone: 8 bytes, what DPDK's bulk get and
/// put move (object pointers) and what a driver keeps in its ring's shadow array.
///
/// The bulk paths over addresses copy a third of the bytes the ``DMABuffer`` paths do;
/// the IOVA and length follow from the pool's ``DMABufferTranslation`` by arithmetic,
/// without touching memory, when the driver writes a descriptor.
@frozen
public struct DMABufferAddress: Hashable, @unchecked Sendable {
    /// The buffer's first byte as an integer.
    public let bitPattern: UInt

    /// The address of `buffer`.
    @inlinable
    public init(_ buffer: DMABuffer) {
        bitPattern = unsafe UInt(bitPattern: buffer.address)
    }

    @inlinable
    init(bitPattern: UInt) {
        self.bitPattern = bitPattern
    }

    /// Where the CPU sees the buffer.
    @inlinable
    public var pointer: UnsafeMutableRawPointer { unsafe UnsafeMutableRawPointer(bitPattern: bitPattern).unsafelyUnwrapped }
}
