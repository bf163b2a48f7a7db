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
// Its storage is a raw pthread mutex and condition variable, used only under their own rules.
@unsafe
package final class LockedState<Value>: @unchecked Sendable {
    private var value: Value
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let changed: UnsafeMutablePointer<pthread_cond_t>

    package init(_ value: Value) {
        unsafe self.value = value
        unsafe mutex = .allocate(capacity: 1)
        unsafe mutex.initialize(to: pthread_mutex_t())
        unsafe precondition(pthread_mutex_init(mutex, nil) == 0, "pthread_mutex_init failed")
        unsafe changed = .allocate(capacity: 1)
        unsafe changed.initialize(to: pthread_cond_t())
        var attributes = pthread_condattr_t()
        unsafe pthread_condattr_init(&attributes)
        unsafe pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        unsafe precondition(pthread_cond_init(changed, &attributes) == 0, "pthread_cond_init failed")
        unsafe pthread_condattr_destroy(&attributes)
    }

    deinit {
        unsafe pthread_cond_destroy(changed)
        unsafe changed.deallocate()
        unsafe pthread_mutex_destroy(mutex)
        unsafe mutex.deallocate()
    }

    /// Wakes every thread in ``wait(timeoutNanoseconds:until:)`` to look again.
    package func broadcast() {
        unsafe pthread_mutex_lock(mutex)
        unsafe pthread_cond_broadcast(changed)
        unsafe pthread_mutex_unlock(mutex)
    }

    /// Blocks until `ready` returns a non-nil answer (checked under the lock, again after
    /// every ``broadcast()``) or the timeout passes (`nil`: no limit); returns the answer,
    /// or `nil` on timeout.
    package func wait<Answer>(timeoutNanoseconds: UInt64?, until ready: (inout Value) -> Answer?) -> Answer? {
        var deadline = timespec()
        if let timeoutNanoseconds {
            unsafe clock_gettime(CLOCK_MONOTONIC, &deadline)
            let total = UInt64(deadline.tv_nsec) + timeoutNanoseconds % 1_000_000_000
            deadline.tv_sec += Int(timeoutNanoseconds / 1_000_000_000) + Int(total / 1_000_000_000)
            deadline.tv_nsec = Int(total % 1_000_000_000)
        }
        unsafe pthread_mutex_lock(mutex)
        defer { unsafe pthread_mutex_unlock(mutex) }
        while true {
            if let answer = unsafe ready(&value) { return answer }
            if timeoutNanoseconds == nil {
                unsafe pthread_cond_wait(changed, mutex)
            } else if unsafe pthread_cond_timedwait(changed, mutex, &deadline) == ETIMEDOUT {
                return unsafe ready(&value)
            }
        }
    }

    package func withLock<Result, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure) -> Result {
        unsafe pthread_mutex_lock(mutex)
        defer { unsafe pthread_mutex_unlock(mutex) }
        return unsafe try body(&value)
    }
}
