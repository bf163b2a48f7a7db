public import IOMMUFD

/// How a pool's buffers sit in its region: what turns a stored address into a
/// ``DMABuffer`` (IOVA = region IOVA + offset) and checks that a returned buffer is one
/// of the pool's. Plain values, copied into each cache, so no class is touched per operation.
@frozen @usableFromInline
struct BufferLayout: Sendable {
    @usableFromInline let baseAddress: UInt
    @usableFromInline let baseIOVA: UInt64
    /// Bytes from the first buffer's start to the end of the last.
    @usableFromInline let span: UInt
    @usableFromInline let bufferSize: Int

    @usableFromInline
    init(baseAddress: UInt, baseIOVA: UInt64, span: UInt, bufferSize: Int) {
        self.baseAddress = baseAddress
        self.baseIOVA = baseIOVA
        self.span = span
        self.bufferSize = bufferSize
    }

    @inlinable @inline(__always)
    func buffer(at address: UInt) -> DMABuffer {
        DMABuffer(address: UnsafeMutableRawPointer(bitPattern: address).unsafelyUnwrapped,
                  iova: IOVA(baseIOVA &+ UInt64(address &- baseAddress)), length: bufferSize)
    }

    @inlinable @inline(__always)
    func owns(_ buffer: DMABuffer) -> Bool {
        UInt(bitPattern: buffer.address) &- baseAddress < span
    }

    /// Turns `count` stored addresses into buffers.
    @inlinable @inline(__always)
    func expand(_ addresses: UnsafePointer<UInt>, into buffers: UnsafeMutablePointer<DMABuffer>, count: Int) {
        for index in 0..<count { (buffers + index).initialize(to: buffer(at: addresses[index])) }
    }

    /// Stores the addresses of `count` buffers; `false` (and nothing meaningful stored)
    /// when one of them is not the pool's. Branch-free, so it vectorizes.
    @inlinable @inline(__always)
    func compress(_ buffers: UnsafePointer<DMABuffer>, into addresses: UnsafeMutablePointer<UInt>, count: Int) -> Bool {
        var largest: UInt = 0
        for index in 0..<count {
            let address = UInt(bitPattern: buffers[index].address)
            largest = Swift.max(largest, address &- baseAddress)
            addresses[index] = address
        }
        return largest < span
    }
}
