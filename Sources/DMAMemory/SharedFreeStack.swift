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
        lockWord = line.bindMemory(to: Atomic<UInt32>.self, capacity: 1)
        lockWord.initialize(to: Atomic(0))
        countPointer = (line + 64).bindMemory(to: Int.self, capacity: 1)
        countPointer.initialize(to: 0)
        slots = .allocate(capacity: capacity)
        self.capacity = capacity
    }

    func deallocate() {
        slots.deallocate()
        lockWord.deinitialize(count: 1)
        UnsafeMutableRawPointer(lockWord).deallocate()
    }

    @inlinable @inline(__always)
    func lock() {
        if lockWord.pointee.compareExchange(expected: 0, desired: 1, successOrdering: .acquiring, failureOrdering: .relaxed).exchanged { return }
        lockContended()
    }

    @usableFromInline @inline(never)
    func lockContended() {
        var spins = 0
        while true {
            while lockWord.pointee.load(ordering: .relaxed) != 0 {
                spins += 1
                // The holder may have been preempted (more threads than cores): let it run.
                if spins & 63 == 0 { sched_yield() }
            }
            if lockWord.pointee.compareExchange(expected: 0, desired: 1, successOrdering: .acquiring, failureOrdering: .relaxed).exchanged { return }
        }
    }

    @inlinable @inline(__always)
    func unlock() {
        lockWord.pointee.store(0, ordering: .releasing)
    }

    /// Free buffers right now (a snapshot).
    var count: Int {
        lock()
        defer { unlock() }
        return countPointer.pointee
    }

    /// Takes exactly `n` buffers into `destination`, or none (`false`).
    @inlinable
    func pop(into destination: UnsafeMutablePointer<UInt>, count n: Int) -> Bool {
        lock()
        let available = countPointer.pointee
        guard available >= n else {
            unlock()
            return false
        }
        let remaining = available &- n
        destination.update(from: slots + remaining, count: n)
        countPointer.pointee = remaining
        unlock()
        return true
    }

    /// Takes up to `n` buffers into `destination`; returns how many.
    @inlinable
    func pop(upTo n: Int, into destination: UnsafeMutablePointer<UInt>) -> Int {
        lock()
        let available = countPointer.pointee
        let taken = min(n, available)
        let remaining = available &- taken
        destination.update(from: slots + remaining, count: taken)
        countPointer.pointee = remaining
        unlock()
        return taken
    }

    /// Gives back `n` buffers.
    @inlinable
    func push(from source: UnsafePointer<UInt>, count n: Int) {
        lock()
        let present = countPointer.pointee
        precondition(present &+ n <= capacity, "more buffers returned than the pool holds: a buffer was put twice")
        (slots + present).update(from: source, count: n)
        countPointer.pointee = present &+ n
        unlock()
    }
}
