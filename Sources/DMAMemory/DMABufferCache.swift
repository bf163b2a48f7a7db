/// One thread's cache in front of a ``DMABufferPool`` (the per-lcore cache of DPDK's
/// mempool): gets and puts touch only the cache until it runs empty or full, and then
/// move `size` buffers to or from the pool's common store in one locked copy.
///
/// Not `Sendable` and not copyable: one thread makes it and uses it; when it goes
/// away its buffers go back to the pool. It keeps the pool alive.
// @safe: its raw storage is the pool's free stack, used only under its lock.
@safe
public struct DMABufferCache: ~Copyable {
    /// The default number of buffers moved at a time (the cache holds up to twice this).
    public static let defaultSize = 256

    /// Cached buffers by address.
    @usableFromInline let slots: UnsafeMutablePointer<UInt>
    @usableFromInline var count: Int
    /// Buffers moved per refill or flush.
    @usableFromInline let size: Int
    /// Slots in the cache: twice `size`.
    @usableFromInline let capacity: Int
    @usableFromInline let shared: SharedFreeStack
    /// Turns a ``DMABufferAddress`` from this cache into its buffer (IOVA, length) by
    /// arithmetic, without touching the pool object.
    public let translation: DMABufferTranslation
    /// Keeps the pool (and so the region and the common store) alive.
    public let pool: DMABufferPool
    /// Debug builds: the pool's record of buffers out with a driver.
    @usableFromInline let outstanding: OutstandingBuffers?

    init(pool: DMABufferPool, size: Int) {
        precondition(size > 0, "a cache holds at least one buffer")
        self.pool = pool
        self.size = size
        capacity = 2 * size
        unsafe slots = .allocate(capacity: 2 * size)
        count = 0
        unsafe shared = unsafe pool.shared
        translation = pool.translation
        outstanding = pool.outstanding
    }

    deinit {
        if count > 0 { unsafe shared.push(from: slots, count: count) }
        unsafe slots.deallocate()
    }

    /// Buffers held by this cache.
    public var cachedCount: Int { count }

    /// Takes one buffer, or `nil` when the cache and the pool are both empty.
    @inlinable
    public mutating func get() -> DMABuffer? {
        if count == 0 {
            count = unsafe shared.pop(upTo: size, into: slots)
            if count == 0 { return nil }
        }
        count &-= 1
        #if DEBUG
        unsafe outstanding?.handOut(slots + count, count: 1)
        #endif
        return unsafe translation.buffer(at: slots[count])
    }

    /// Gives one buffer back.
    @inlinable
    public mutating func put(_ buffer: DMABuffer) {
        precondition(translation.owns(buffer), "the buffer does not belong to this pool, or is not the start of one of its buffers")
        if count == capacity { flush() }
        unsafe slots[count] = unsafe UInt(bitPattern: buffer.address)
        #if DEBUG
        unsafe outstanding?.takeBack(slots + count, count: 1)
        #endif
        count &+= 1
    }

    /// Fills `buffers` completely, or takes nothing and returns `false`.
    @inlinable @inline(__always)
    public mutating func get(into buffers: UnsafeMutableBufferPointer<DMABuffer>) -> Bool {
        let n = buffers.count
        guard n > 0, let destination = buffers.baseAddress else { return true }
        if n > capacity { return unsafe pool.get(into: buffers) }
        guard hold(atLeast: n) else { return false }
        count &-= n
        #if DEBUG
        unsafe outstanding?.handOut(slots + count, count: n)
        #endif
        unsafe translation.expand(slots + count, into: destination, count: n)
        return true
    }

    /// Gives every buffer in `buffers` back.
    @inlinable @inline(__always)
    public mutating func put(_ buffers: UnsafeBufferPointer<DMABuffer>) {
        let n = buffers.count
        guard n > 0, let source = buffers.baseAddress else { return }
        if n > capacity { return unsafe pool.put(buffers) }
        makeRoom(for: n)
        unsafe precondition(translation.compress(source, into: slots + count, count: n), "a buffer does not belong to this pool")
        #if DEBUG
        unsafe outstanding?.takeBack(slots + count, count: n)
        #endif
        count &+= n
    }

    /// Fills `addresses` completely, or takes nothing and returns `false`: the bulk path
    /// that moves 8 bytes per buffer, like DPDK's object pointers. ``translation`` gives
    /// each address's IOVA. The bulk paths are always inlined into the caller's loop: left
    /// to the optimizer, the put became a call that alone cost more than DPDK's get and
    /// put together.
    @inlinable @inline(__always)
    public mutating func get(into addresses: UnsafeMutableBufferPointer<DMABufferAddress>) -> Bool {
        let n = addresses.count
        guard n > 0, let destination = addresses.baseAddress else { return true }
        if n > capacity { return unsafe pool.get(into: addresses) }
        guard hold(atLeast: n) else { return false }
        count &-= n
        #if DEBUG
        unsafe outstanding?.handOut(slots + count, count: n)
        #endif
        unsafe translation.emit(slots + count, into: destination, count: n)
        return true
    }

    /// Gives every buffer in `addresses` back.
    @inlinable @inline(__always)
    public mutating func put(_ addresses: UnsafeBufferPointer<DMABufferAddress>) {
        let n = addresses.count
        guard n > 0, let source = addresses.baseAddress else { return }
        if n > capacity { return unsafe pool.put(addresses) }
        makeRoom(for: n)
        unsafe precondition(translation.admit(source, into: slots + count, count: n), "a buffer does not belong to this pool")
        #if DEBUG
        unsafe outstanding?.takeBack(slots + count, count: n)
        #endif
        count &+= n
    }

    /// Makes the cache hold at least `n` (at most `capacity`) buffers, refilling so that
    /// about `size` stay behind after `n` are taken; `false` when the pool has too few.
    @inlinable @inline(__always)
    mutating func hold(atLeast n: Int) -> Bool {
        if n <= count { return true }
        unsafe count &+= shared.pop(upTo: min(capacity &- count, n &- count &+ size), into: slots + count)
        return n <= count
    }

    /// Flushes until `n` (at most `capacity`) more buffers fit.
    @inlinable @inline(__always)
    mutating func makeRoom(for n: Int) {
        while count &+ n > capacity { flush() }
    }

    /// Moves the cache's newest `size` buffers (or all it has, if fewer) to the common store.
    @usableFromInline
    mutating func flush() {
        let moved = min(size, count)
        count &-= moved
        unsafe shared.push(from: slots + count, count: moved)
    }

    /// Gives every cached buffer back to the pool.
    public mutating func flushAll() {
        if count > 0 { unsafe shared.push(from: slots, count: count) }
        count = 0
    }
}
