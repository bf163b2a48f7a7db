import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The pool's common store of free buffers: a stack under a spinlock, in raw memory so
/// that no reference is counted when a cache or a thread reaches it.
///
/// A spinlock rather than a mutex: the critical section is a bounded copy, and an
/// uncontended acquire is one compare-and-swap.
@usableFromInline
// @unsafe: manually allocated storage, freed by an explicit call.
@unsafe
struct SharedFreeStack: @unchecked Sendable {
    /// 0 free, 1 held; alone on its cache line.
    @usableFromInline let lockWord: UnsafeMutablePointer<Atomic<UInt32>>
    /// How many entries of `slots` are free buffers.
    @usableFromInline let countPointer: UnsafeMutablePointer<Int>
    /// Free buffers by address (the pool turns an address into a ``DMABuffer``).
    @usableFromInline let slots: UnsafeMutablePointer<UInt>
    @usableFromInline let capacity: Int

    init(capacity: Int) {
        let line = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 64)
        unsafe lockWord = unsafe line.bindMemory(to: Atomic<UInt32>.self, capacity: 1)
        unsafe lockWord.initialize(to: Atomic(0))
        unsafe countPointer = unsafe (line + 64).bindMemory(to: Int.self, capacity: 1)
        unsafe countPointer.initialize(to: 0)
        unsafe slots = .allocate(capacity: capacity)
        unsafe self.capacity = capacity
    }

    func deallocate() {
        unsafe slots.deallocate()
        unsafe lockWord.deinitialize(count: 1)
        unsafe UnsafeMutableRawPointer(lockWord).deallocate()
    }

    @inlinable @inline(__always)
    func lock() {
        if unsafe lockWord.pointee.compareExchange(expected: 0, desired: 1, successOrdering: .acquiring, failureOrdering: .relaxed).exchanged { return }
        unsafe lockContended()
    }

    @usableFromInline @inline(never)
    func lockContended() {
        var spins = 0
        while true {
            while unsafe lockWord.pointee.load(ordering: .relaxed) != 0 {
                spins += 1
                // The holder may have been preempted (more threads than cores): let it run.
                if spins & 63 == 0 { sched_yield() }
            }
            if unsafe lockWord.pointee.compareExchange(expected: 0, desired: 1, successOrdering: .acquiring, failureOrdering: .relaxed).exchanged { return }
        }
    }

    @inlinable @inline(__always)
    func unlock() {
        unsafe lockWord.pointee.store(0, ordering: .releasing)
    }

    /// Free buffers right now (a snapshot).
    var count: Int {
        unsafe lock()
        defer { unsafe unlock() }
        return unsafe countPointer.pointee
    }

    /// Takes exactly `n` buffers into `destination`, or none (`false`).
    @inlinable
    func pop(into destination: UnsafeMutablePointer<UInt>, count n: Int) -> Bool {
        unsafe lock()
        let available = unsafe countPointer.pointee
        guard available >= n else {
            unsafe unlock()
            return false
        }
        let remaining = available &- n
        unsafe destination.update(from: slots + remaining, count: n)
        unsafe countPointer.pointee = remaining
        unsafe unlock()
        return true
    }

    /// Takes up to `n` buffers into `destination`; returns how many.
    @inlinable
    func pop(upTo n: Int, into destination: UnsafeMutablePointer<UInt>) -> Int {
        unsafe lock()
        let available = unsafe countPointer.pointee
        let taken = min(n, available)
        let remaining = available &- taken
        unsafe destination.update(from: slots + remaining, count: taken)
        unsafe countPointer.pointee = remaining
        unsafe unlock()
        return taken
    }

    /// Gives back `n` buffers.
    @inlinable
    func push(from source: UnsafePointer<UInt>, count n: Int) {
        unsafe lock()
        let present = unsafe countPointer.pointee
        unsafe precondition(present &+ n <= capacity, "more buffers returned than the pool holds: a buffer was put twice")
        unsafe (slots + present).update(from: source, count: n)
        unsafe countPointer.pointee = present &+ n
        unsafe unlock()
    }
}
