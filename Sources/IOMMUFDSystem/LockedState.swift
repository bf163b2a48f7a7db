import CIOMMUFD
#if canImport(Glibc)
import Glibc
#endif

/// State behind a pthread mutex (the mock kernel's model, the DMA manager's allocator).
///
/// `Synchronization.Mutex` would do, but on Linux it parks on a raw futex that
/// ThreadSanitizer cannot see, so every access it protects is reported as a race.
/// A pthread mutex is intercepted by TSan, which keeps `swift test --sanitize=thread`
/// meaningful for code that uses MockKernel from several threads.
package final class LockedState<Value>: @unchecked Sendable {
    private var value: Value
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let changed: UnsafeMutablePointer<pthread_cond_t>

    package init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        precondition(pthread_mutex_init(mutex, nil) == 0, "pthread_mutex_init failed")
        changed = .allocate(capacity: 1)
        changed.initialize(to: pthread_cond_t())
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        precondition(pthread_cond_init(changed, &attributes) == 0, "pthread_cond_init failed")
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(changed)
        changed.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Wakes every thread in ``wait(timeoutNanoseconds:until:)`` to look again.
    package func broadcast() {
        pthread_mutex_lock(mutex)
        pthread_cond_broadcast(changed)
        pthread_mutex_unlock(mutex)
    }

    /// Blocks until `ready` returns a non-nil answer (checked under the lock, again after
    /// every ``broadcast()``) or the timeout passes (`nil`: no limit); returns the answer,
    /// or `nil` on timeout.
    package func wait<Answer>(timeoutNanoseconds: UInt64?, until ready: (inout Value) -> Answer?) -> Answer? {
        var deadline = timespec()
        if let timeoutNanoseconds {
            clock_gettime(CLOCK_MONOTONIC, &deadline)
            let total = UInt64(deadline.tv_nsec) + timeoutNanoseconds % 1_000_000_000
            deadline.tv_sec += Int(timeoutNanoseconds / 1_000_000_000) + Int(total / 1_000_000_000)
            deadline.tv_nsec = Int(total % 1_000_000_000)
        }
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while true {
            if let answer = ready(&value) { return answer }
            if timeoutNanoseconds == nil {
                pthread_cond_wait(changed, mutex)
            } else if pthread_cond_timedwait(changed, mutex, &deadline) == ETIMEDOUT {
                return ready(&value)
            }
        }
    }

    package func withLock<Result, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
