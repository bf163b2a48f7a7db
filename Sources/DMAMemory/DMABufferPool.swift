public import IOMMUFD

/// Fixed-size DMA buffers carved from one region, with mempool semantics (DPDK's
/// `rte_mempool`): get and put, one at a time or in bulk, through a per-thread
/// ``DMABufferCache`` or straight from the common store.
///
/// The region is mapped once; a buffer is a ``DMABuffer`` value whose IOVA is the
/// region's IOVA plus its offset, so translation both ways is O(1) arithmetic.
/// Nothing on the get/put paths allocates or counts a reference.
// @safe: the free stack's raw storage is used only under its lock, and only for buffers
// the pool made; what a user does with a buffer's memory is flagged at `DMABuffer.address`.
@safe
public final class DMABufferPool: @unchecked Sendable {
    /// Usable bytes per buffer.
    public let bufferSize: Int
    /// Distance between buffers (the size rounded up to the alignment).
    public let stride: Int
    /// Buffers in the pool.
    public let count: Int
    /// The region the buffers are carved from.
    public let region: DMARegion

    /// Turns a ``DMABufferAddress`` from this pool into its buffer (IOVA, length) by arithmetic.
    public let translation: DMABufferTranslation
    @usableFromInline let shared: SharedFreeStack
    /// Debug builds: the buffers out with a driver, to catch a second put. `nil` in release builds.
    @usableFromInline let outstanding: OutstandingBuffers?

    /// A pool of `count` buffers of `bufferSize` bytes, each starting on a multiple of
    /// `alignment` (a power of two; 64 keeps buffers on their own cache lines), in one
    /// region from `manager`.
    ///
    /// - Throws: the region's errors (backing, memlock, IOVA space, mapping).
    public init(
        manager: DMAMemoryManager, bufferSize: Int, count: Int, alignment: Int = 64,
        backing: BackingPolicy, placement: NUMAPlacement = .anyNode, access: MapAccess = .readWrite,
        progress: ((_ done: Int, _ total: Int) -> Void)? = nil
    ) throws(DMAMemoryError) {
        precondition(bufferSize > 0 && count > 0, "a pool has at least one buffer of at least one byte")
        precondition(alignment > 0 && alignment & (alignment - 1) == 0, "the alignment is a power of two")
        let stride = (bufferSize + alignment - 1) & ~(alignment - 1)
        let region = try manager.makeRegion(length: stride * count, backing: backing, placement: placement, access: access, progress: progress)
        self.bufferSize = bufferSize
        self.stride = stride
        self.count = count
        translation = unsafe DMABufferTranslation(baseAddress: UInt(bitPattern: region.address), baseIOVA: region.iova.rawValue,
                              span: UInt(stride * count), bufferSize: bufferSize, stride: stride)
        self.region = region
        unsafe shared = unsafe SharedFreeStack(capacity: count)
        #if DEBUG
        outstanding = OutstandingBuffers(baseAddress: translation.baseAddress, stride: stride, count: count)
        #else
        outstanding = nil
        #endif
        // The lowest buffers on top, so a fresh pool hands them out in address order.
        for index in 0..<count {
            unsafe (shared.slots + index).initialize(to: translation.baseAddress + UInt((count - 1 - index) * stride))
        }
        unsafe shared.countPointer.pointee = count
    }

    deinit {
        unsafe shared.deallocate()
    }

    /// Buffers in the common store now (buffers held by caches are not counted).
    public var availableCount: Int { unsafe shared.count }

    /// Takes one buffer from the common store, or `nil` when it is empty.
    @inlinable
    public func get() -> DMABuffer? {
        var address: UInt = 0
        guard unsafe shared.pop(into: &address, count: 1) else { return nil }
        #if DEBUG
        unsafe outstanding?.handOut(&address, count: 1)
        #endif
        return translation.buffer(at: address)
    }

    /// Gives one buffer back to the common store.
    @inlinable
    public func put(_ buffer: DMABuffer) {
        precondition(translation.owns(buffer), "the buffer does not belong to this pool, or is not the start of one of its buffers")
        var address = unsafe UInt(bitPattern: buffer.address)
        #if DEBUG
        unsafe outstanding?.takeBack(&address, count: 1)
        #endif
        unsafe shared.push(from: &address, count: 1)
    }

    /// Fills `buffers` completely from the common store, or takes nothing and returns `false`.
    @inlinable
    public func get(into buffers: UnsafeMutableBufferPointer<DMABuffer>) -> Bool {
        guard let base = buffers.baseAddress, !buffers.isEmpty else { return true }
        return unsafe withUnsafeTemporaryAllocation(of: UInt.self, capacity: buffers.count) { addresses in
            guard unsafe shared.pop(into: addresses.baseAddress!, count: buffers.count) else { return false }
            #if DEBUG
            unsafe outstanding?.handOut(addresses.baseAddress!, count: buffers.count)
            #endif
            unsafe translation.expand(addresses.baseAddress!, into: base, count: buffers.count)
            return true
        }
    }

    /// Gives every buffer in `buffers` back to the common store.
    @inlinable
    public func put(_ buffers: UnsafeBufferPointer<DMABuffer>) {
        guard let base = buffers.baseAddress, !buffers.isEmpty else { return }
        unsafe withUnsafeTemporaryAllocation(of: UInt.self, capacity: buffers.count) { addresses in
            unsafe precondition(translation.compress(base, into: addresses.baseAddress!, count: buffers.count), "a buffer does not belong to this pool")
            #if DEBUG
            unsafe outstanding?.takeBack(addresses.baseAddress!, count: buffers.count)
            #endif
            unsafe shared.push(from: addresses.baseAddress!, count: buffers.count)
        }
    }

    /// Fills `addresses` completely from the common store, or takes nothing and returns
    /// `false`. The address form of ``get(into:)-(UnsafeMutableBufferPointer<DMABuffer>)``.
    @inlinable
    public func get(into addresses: UnsafeMutableBufferPointer<DMABufferAddress>) -> Bool {
        guard let base = addresses.baseAddress, !addresses.isEmpty else { return true }
        return unsafe base.withMemoryRebound(to: UInt.self, capacity: addresses.count) { taken in
            guard unsafe shared.pop(into: taken, count: addresses.count) else { return false }
            #if DEBUG
            unsafe outstanding?.handOut(taken, count: addresses.count)
            #endif
            return true
        }
    }

    /// Gives every buffer in `addresses` back to the common store.
    @inlinable
    public func put(_ addresses: UnsafeBufferPointer<DMABufferAddress>) {
        guard let base = addresses.baseAddress, !addresses.isEmpty else { return }
        unsafe withUnsafeTemporaryAllocation(of: UInt.self, capacity: addresses.count) { staged in
            unsafe precondition(translation.admit(base, into: staged.baseAddress!, count: addresses.count), "a buffer does not belong to this pool")
            #if DEBUG
            unsafe outstanding?.takeBack(staged.baseAddress!, count: addresses.count)
            #endif
            unsafe shared.push(from: staged.baseAddress!, count: addresses.count)
        }
    }

    /// A cache for the calling thread; see ``DMABufferCache``.
    public func makeCache(size: Int = DMABufferCache.defaultSize) -> DMABufferCache {
        DMABufferCache(pool: self, size: size)
    }

    /// The IOVA of a byte inside the pool's region. O(1).
    @inlinable
    public func iova(of address: UnsafeRawPointer) -> IOVA? {
        let offset = UInt(bitPattern: address) &- translation.baseAddress
        guard offset < translation.span else { return nil }
        return IOVA(translation.baseIOVA &+ UInt64(offset))
    }

    /// The address of an IOVA inside the pool's region. O(1).
    @inlinable
    public func address(of iova: IOVA) -> UnsafeMutableRawPointer? {
        let offset = iova.rawValue &- translation.baseIOVA
        guard offset < UInt64(translation.span) else { return nil }
        return unsafe UnsafeMutableRawPointer(bitPattern: translation.baseAddress &+ UInt(offset))
    }

    /// The buffer that holds `address` (for example a completion that reports a pointer). O(1).
    public func buffer(containing address: UnsafeRawPointer) -> DMABuffer? {
        let offset = UInt(bitPattern: address) &- translation.baseAddress
        guard offset < translation.span else { return nil }
        return translation.buffer(at: translation.baseAddress + offset - offset % UInt(stride))
    }

    /// The buffer that holds `iova` (for example from a device's completion entry). O(1).
    public func buffer(at iova: IOVA) -> DMABuffer? {
        guard let address = unsafe address(of: iova) else { return nil }
        return unsafe buffer(containing: address)
    }
}
