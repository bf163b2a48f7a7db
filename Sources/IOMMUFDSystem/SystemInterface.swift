import CIOMMUFD
public import SystemPackage

/// The one seam between swift-iommufd and the operating system.
///
/// Every layer above talks to the OS only through a `SystemInterface`:
/// ``LinuxSystem`` makes the real system calls, and `MockKernel` answers from
/// an in-process model of the kernel. Because the seam is *raw*
/// (`ioctl(fd, request, pointer)`), the mock sees exactly the bytes the kernel
/// would see, including the `size` field, undersized and oversized structs and
/// NULL arguments, so the struct marshalling is tested on every run.
///
/// All methods report failure as the `Errno` the kernel (or the model) gave.
/// Implementations retry `EINTR` themselves where that is safe, never for `close`.
public protocol SystemInterface: Sendable {
    /// Opens `path`. Callers always pass `O_CLOEXEC`. The corresponding call is `open(2)`.
    func open(_ path: String, flags: Int32, mode: UInt32) throws(Errno) -> Int32
    /// Closes `fd`; the descriptor is released even when an error is reported. The corresponding call is `close(2)`.
    func close(_ fd: Int32) throws(Errno)
    /// Issues `request` on `fd` with `argument` passed through unchanged. The corresponding call is `ioctl(2)`.
    func ioctl(_ fd: Int32, _ request: UInt, _ argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32
    /// The same call, answering instead of throwing: the result when it is non-negative,
    /// otherwise `-errno`. The ioctl catalogue uses it so that a failing call throws once,
    /// as its typed error, rather than twice. The default calls ``ioctl(_:_:_:)``.
    func ioctlResult(_ fd: Int32, _ request: UInt, _ argument: UnsafeMutableRawPointer?) -> Int32
    /// Whether this is the real kernel reached through ``LinuxSystem/ioctlInPlace(_:_:_:)``:
    /// the ioctl catalogue then issues the call in place instead of through
    /// ``ioctlResult(_:_:_:)``. Only ``LinuxSystem`` answers `true`; the default is `false`,
    /// so a model or a wrapper of the seam sees every ioctl.
    var issuesIOCTLsInPlace: Bool { get }
    /// Which process this is, as a generation: it changes in the child of every `fork()`.
    /// Handles remember it when they are made and refuse to act in another process (the
    /// kernel would let the child act on the parent's objects through the inherited
    /// descriptors). The default watches real forks (`pthread_atfork`).
    var processGeneration: UInt { get }
    /// The corresponding call is `read(2)`.
    func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int
    /// The corresponding call is `write(2)`.
    func write(_ fd: Int32, from buffer: UnsafeRawBufferPointer) throws(Errno) -> Int
    /// The corresponding call is `pread(2)`.
    func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, offset: Int64) throws(Errno) -> Int
    /// The corresponding call is `pwrite(2)`.
    func pwrite(_ fd: Int32, from buffer: UnsafeRawBufferPointer, offset: Int64) throws(Errno) -> Int
    /// The corresponding call is `mmap(2)`.
    func mmap(address: UnsafeMutableRawPointer?, length: Int, protection: Int32, flags: Int32, fd: Int32, offset: Int64) throws(Errno) -> UnsafeMutableRawPointer
    /// The corresponding call is `munmap(2)`.
    func munmap(_ address: UnsafeMutableRawPointer, length: Int) throws(Errno)
    /// Who must be told of register accesses through a device region just mapped
    /// from `fd` at `offset` (a VFIO region offset), or `nil` when the mapping is
    /// the device itself. Asked once per mapping, never per access. ``LinuxSystem``
    /// answers `nil` (the default); a model that plays the device answers an observer.
    func mmioObserver(fd: Int32, offset: Int64) -> MMIOObserver?
    /// Advises the kernel about a range: `MADV_POPULATE_WRITE` faults every page in
    /// writable (and fails with `ENOMEM` when memory or hugepages run out),
    /// `MADV_HUGEPAGE` asks for transparent huge pages. The corresponding call is `madvise(2)`.
    func madvise(_ address: UnsafeMutableRawPointer, length: Int, advice: Int32) throws(Errno)
    /// Sets the NUMA policy of a range (`MPOL_BIND`, `MPOL_PREFERRED`, ...) over the nodes
    /// in `nodeMask` (bit n = node n; nodes 0-63). Pages faulted in afterwards follow it.
    /// The corresponding call is libnuma's `mbind(2)`.
    func mbind(_ address: UnsafeMutableRawPointer, length: Int, mode: Int32, nodeMask: UInt64, flags: UInt32) throws(Errno)
    /// Where each page is: its NUMA node, or a negative errno (`-ENOENT` when the page
    /// is not present). The corresponding call is libnuma's `move_pages(2)` with no target nodes.
    func pageNodes(_ pages: [UnsafeRawPointer]) throws(Errno) -> [Int32]
    /// Creates an anonymous memory file. The corresponding call is `memfd_create(2)`.
    func memfdCreate(_ name: String, flags: UInt32) throws(Errno) -> Int32
    /// The corresponding call is `ftruncate(2)`.
    func ftruncate(_ fd: Int32, length: Int64) throws(Errno)
    /// The corresponding call is `eventfd(2)`.
    func eventfd(initialValue: UInt32, flags: Int32) throws(Errno) -> Int32
    /// Blocks until at least one of `fds` is readable or `timeoutNanoseconds` passes
    /// (`nil`: no limit; 0: only look) and returns the indices of the readable ones, empty
    /// on timeout. The corresponding call is `poll(2)` with `POLLIN` (restarted with the
    /// remaining time after `EINTR`).
    func waitReadable(_ fds: [Int32], timeoutNanoseconds: UInt64?) throws(Errno) -> [Int]
    /// The calling process's id. The corresponding call is `getpid(2)`.
    func processID() -> Int32
    /// `CLOCK_MONOTONIC` in nanoseconds. The corresponding call is `clock_gettime(2)`.
    func monotonicNanoseconds() -> UInt64
    /// Sleeps the calling thread. The corresponding call is `nanosleep(2)`.
    func sleep(nanoseconds: UInt64)
    /// Reads a whole (small) file such as a sysfs attribute.
    func readFile(_ path: String) throws(Errno) -> [UInt8]
    /// Writes `bytes` to an existing file such as a sysfs attribute.
    func writeFile(_ path: String, _ bytes: [UInt8]) throws(Errno)
    /// Creates (or truncates) a regular file with mode 0644 and writes `bytes` to it,
    /// such as a driverctl override in `/etc/driverctl.d`.
    func createFile(_ path: String, _ bytes: [UInt8]) throws(Errno)
    /// Removes a file. The corresponding call is `unlink(2)`.
    func removeFile(_ path: String) throws(Errno)
    /// The target of a symbolic link. The corresponding call is `readlink(2)`.
    func readLink(_ path: String) throws(Errno) -> String
    /// The names in a directory, without `.` and `..`.
    func listDirectory(_ path: String) throws(Errno) -> [String]
    /// `RLIMIT_MEMLOCK` of the calling process. The corresponding call is `getrlimit(2)`.
    func memoryLockLimit() throws(Errno) -> ResourceLimit
    /// `setrlimit(RLIMIT_MEMLOCK)`. Raising `maximum` needs `CAP_SYS_RESOURCE` (`EPERM`).
    func setMemoryLockLimit(_ limit: ResourceLimit) throws(Errno)
}

/// A soft/hard resource limit pair; `nil` means unlimited.
public struct ResourceLimit: Sendable, Hashable {
    /// The limit in force (bytes), or `nil` for `RLIM_INFINITY`.
    public var current: UInt64?
    /// The ceiling an unprivileged process may raise `current` to, or `nil` for unlimited.
    public var maximum: UInt64?

    /// Creates a limit pair from the soft limit `current` and the hard limit `maximum`, in bytes (`nil`: unlimited).
    public init(current: UInt64?, maximum: UInt64?) {
        self.current = current
        self.maximum = maximum
    }
}

extension SystemInterface {
    /// `false`: every ioctl goes through ``ioctlResult(_:_:_:)``.
    public var issuesIOCTLsInPlace: Bool { false }

    /// This process's generation, counted by a fork handler installed on first use.
    public var processGeneration: UInt { UInt(ciommufd_watch_forks()) }

    /// ``ioctl(_:_:_:)`` with the errno as a negative result.
    public func ioctlResult(_ fd: Int32, _ request: UInt, _ argument: UnsafeMutableRawPointer?) -> Int32 {
        do { return unsafe try ioctl(fd, request, argument) } catch { return -error.rawValue }
    }
}
