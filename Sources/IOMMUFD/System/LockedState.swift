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

    package init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        precondition(pthread_mutex_init(mutex, nil) == 0, "pthread_mutex_init failed")
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    package func withLock<Result, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
