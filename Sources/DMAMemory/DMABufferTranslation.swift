public import IOMMUFD

/// How a pool's buffers sit in its region: what turns a buffer's address into a
/// ``DMABuffer`` (IOVA = region IOVA + offset) and checks that a returned buffer is one
/// of the pool's. A plain value, copied into each cache, so no class is touched per
/// operation; drivers get it from ``DMABufferPool/translation`` or
/// ``DMABufferCache/translation`` to turn ``DMABufferAddress`` values into buffers.
@frozen
public struct DMABufferTranslation: Sendable {
    @usableFromInline let baseAddress: UInt
    @usableFromInline let baseIOVA: UInt64
    /// The first byte after the last buffer.
    @usableFromInline let endAddress: UInt
    /// Usable bytes per buffer.
    public let bufferSize: Int
    /// The buffer stride as 2^strideShift × an odd factor, and the odd factor's inverse
    /// modulo 2^64 with the largest quotient it can give for a multiple of it
    /// (Granlund-Montgomery): `offset` is a multiple of the stride exactly when its low
    /// `strideShift` bits are zero and `(offset >> strideShift) &* oddInverse <= quotientLimit`.
    /// A shift, a multiply and a compare per buffer, no division.
    @usableFromInline let strideShift: UInt
    @usableFromInline let oddInverse: UInt
    @usableFromInline let quotientLimit: UInt

    @usableFromInline
    init(baseAddress: UInt, baseIOVA: UInt64, span: UInt, bufferSize: Int, stride: Int) {
        precondition(baseAddress >> (UInt.bitWidth - 1) == 0 && span >> (UInt.bitWidth - 1) == 0,
                     "user-space addresses and pool spans are below 2^63")
        precondition(stride > 0 && stride >= bufferSize, "buffers do not overlap")
        self.baseAddress = baseAddress
        self.baseIOVA = baseIOVA
        endAddress = baseAddress + span
        self.bufferSize = bufferSize
        let shift = UInt(stride.trailingZeroBitCount)
        let odd = UInt(stride) >> shift
        // Newton's iteration doubles the correct low bits of the inverse each step: 3 bits
        // from `odd` itself (odd * odd = 1 mod 8), then 6, 12, 24, 48, 96.
        var inverse = odd
        for _ in 0..<5 { inverse = inverse &* (2 &- odd &* inverse) }
        strideShift = shift
        oddInverse = inverse
        quotientLimit = UInt.max / odd
    }

    /// The buffer at `address` (IOVA and length by arithmetic). Not checked: use it on
    /// addresses this pool handed out.
    @inlinable @inline(__always)
    public func buffer(_ address: DMABufferAddress) -> DMABuffer {
        buffer(at: address.bitPattern)
    }

    /// The IOVA of the buffer at `address`. Not checked, like ``buffer(_:)``.
    @inlinable @inline(__always)
    public func iova(of address: DMABufferAddress) -> IOVA {
        IOVA(baseIOVA &+ UInt64(address.bitPattern &- baseAddress))
    }

    @inlinable @inline(__always)
    func buffer(at address: UInt) -> DMABuffer {
        unsafe DMABuffer(address: UnsafeMutableRawPointer(bitPattern: address).unsafelyUnwrapped,
                  iova: IOVA(baseIOVA &+ UInt64(address &- baseAddress)), length: bufferSize)
    }

    /// Whether `address` lies in the pool's region. Both paths below use the same test:
    /// with addresses and spans below 2^63, an address is inside when address - base has
    /// the top bit clear and address - end has it set. Only 64-bit subtracts and ORs, so the bulk
    /// loops vectorize even on baseline x86-64, which has no unsigned 64-bit compare.
    /// Bytes from the first buffer's start to the end of the last.
    @inlinable
    var span: UInt { endAddress &- baseAddress }

    @inlinable @inline(__always)
    func outsideBits(_ address: UInt) -> UInt {
        // Two independent subtracts and one three-way OR (a single vpternlogq with AVX-512).
        (address &- baseAddress) | ~(address &- endAddress)
    }

    /// The top bit set when `address` is not the start of a buffer (inside the region but
    /// between two buffer starts).
    @inlinable @inline(__always)
    func offBoundaryBits(_ address: UInt) -> UInt {
        let offset = address &- baseAddress
        let lowBits = offset & ((1 &<< strideShift) &- 1)
        let quotient = (offset &>> strideShift) &* oddInverse
        return (lowBits != 0 || quotient > quotientLimit) ? 1 &<< (UInt.bitWidth - 1) : 0
    }

    @inlinable @inline(__always)
    func owns(_ buffer: DMABuffer) -> Bool {
        let address = unsafe UInt(bitPattern: buffer.address)
        return (outsideBits(address) | offBoundaryBits(address)) >> (UInt.bitWidth - 1) == 0
    }

    /// Turns `count` stored addresses into buffers.
    @inlinable @inline(__always)
    func expand(_ addresses: UnsafePointer<UInt>, into buffers: UnsafeMutablePointer<DMABuffer>, count: Int) {
        for index in 0..<count { unsafe (buffers + index).initialize(to: buffer(at: addresses[index])) }
    }

    /// Stores the addresses of `count` buffers; `false` (and nothing meaningful stored)
    /// when one of them is not the pool's.
    @inlinable @inline(__always)
    func compress(_ buffers: UnsafePointer<DMABuffer>, into addresses: UnsafeMutablePointer<UInt>, count: Int) -> Bool {
        unsafe admitAll(count: count, { unsafe UInt(bitPattern: buffers[$0].address) }, into: addresses)
    }

    /// Copies `count` addresses; `false` (and nothing meaningful stored) when one of them
    /// is not the pool's.
    @inlinable @inline(__always)
    func admit(_ source: UnsafePointer<DMABufferAddress>, into addresses: UnsafeMutablePointer<UInt>, count: Int) -> Bool {
        guard oddInverse == 1 else { return unsafe admitAll(count: count, { unsafe source[$0].bitPattern }, into: addresses) }
        // Four addresses at a time in 256-bit lanes, as `emit` writes them, whatever the
        // caller's array alignment: the loop vectorizer's wider, alignment-peeled loop ran
        // 1.6-2x slower on a burst array that is not cache-line aligned (iommufd-bench pool).
        let from = UnsafeRawPointer(source), to = UnsafeMutableRawPointer(addresses)
        let base = SIMD4<UInt>(repeating: baseAddress), end = SIMD4<UInt>(repeating: endAddress)
        let lowMask = SIMD4<UInt>(repeating: (1 &<< strideShift) &- 1)
        var bad = SIMD4<UInt>(repeating: 0)
        var index = 0
        while index &+ 4 <= count {
            let value = unsafe from.loadUnaligned(fromByteOffset: index &* 8, as: SIMD4<UInt>.self)
            let offset = value &- base
            bad |= (offset | ~(value &- end)) & SIMD4(repeating: 1 &<< (UInt.bitWidth - 1)) | offset & lowMask
            unsafe to.storeBytes(of: value, toByteOffset: index &* 8, as: SIMD4<UInt>.self)
            index &+= 4
        }
        var tail: UInt = 0
        while index < count {
            let value = unsafe source[index].bitPattern
            tail |= (outsideBits(value) & (1 &<< (UInt.bitWidth - 1))) | ((value &- baseAddress) & lowMask[0])
            unsafe addresses[index] = value
            index &+= 1
        }
        return (bad[0] | bad[1] | bad[2] | bad[3] | tail) == 0
    }

    /// Copies `count` addresses out of `address(index)` and checks, once for the whole burst,
    /// that each is the start of one of the pool's buffers. The loop body has no branch and
    /// no comparison per address (the range check is two subtractions' sign bits, the
    /// boundary check ORs the low bits and keeps the largest quotient, compared once at the
    /// end), so it vectorizes; a power-of-two stride, the usual case, skips the multiply.
    @inlinable @inline(__always)
    func admitAll(count: Int, _ address: (Int) -> UInt, into addresses: UnsafeMutablePointer<UInt>) -> Bool {
        var outside: UInt = 0
        var lowBits: UInt = 0
        let lowMask = (1 &<< strideShift) &- 1
        if oddInverse == 1 {
            for index in 0..<count {
                let value = address(index)
                outside |= outsideBits(value)
                lowBits |= (value &- baseAddress) & lowMask
                unsafe addresses[index] = value
            }
            return outside >> (UInt.bitWidth - 1) == 0 && lowBits == 0
        }
        var largestQuotient: UInt = 0
        for index in 0..<count {
            let value = address(index)
            let offset = value &- baseAddress
            outside |= outsideBits(value)
            lowBits |= offset & lowMask
            largestQuotient = Swift.max(largestQuotient, (offset &>> strideShift) &* oddInverse)
            unsafe addresses[index] = value
        }
        return outside >> (UInt.bitWidth - 1) == 0 && lowBits == 0 && largestQuotient <= quotientLimit
    }

    /// Copies `count` stored addresses out, in the 256-bit lanes `admit` reads them back in.
    @inlinable @inline(__always)
    func emit(_ addresses: UnsafePointer<UInt>, into destination: UnsafeMutablePointer<DMABufferAddress>, count: Int) {
        let source = UnsafeRawPointer(addresses), target = UnsafeMutableRawPointer(destination)
        var index = 0
        while index &+ 4 <= count {
            unsafe target.storeBytes(of: source.loadUnaligned(fromByteOffset: index &* 8, as: SIMD4<UInt64>.self), toByteOffset: index &* 8, as: SIMD4<UInt64>.self)
            index &+= 4
        }
        while index < count {
            unsafe target.storeBytes(of: source.load(fromByteOffset: index &* 8, as: UInt.self), toByteOffset: index &* 8, as: UInt.self)
            index &+= 1
        }
    }
}
