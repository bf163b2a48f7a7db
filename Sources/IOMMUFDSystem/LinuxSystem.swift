import CIOMMUFD
public import SystemPackage
#if canImport(Glibc)
// `stderr` and friends are global C state; this file touches none of it.
@preconcurrency @unsafe import Glibc
#endif

/// The real operating system: the only file in swift-iommufd that makes system calls.
///
/// Every result is checked; `errno` is read immediately after the call;
/// `EINTR` is retried except for `close`, which must never be retried on Linux
/// because the descriptor is already released.
public struct LinuxSystem: SystemInterface {
    /// Creates the real system interface; it holds no state.
    public init() {}

    @inline(__always)
    private func valueOrErrno<Value: FixedWidthInteger>(
        retryOnInterrupt: Bool = true, _ call: () -> Value
    ) throws(Errno) -> Value {
        while true {
            let result = call()
            if result != -1 { return result }
            let error = Errno(rawValue: ciommufd_errno())
            if retryOnInterrupt && error == .interrupted { continue }
            throw error
        }
    }

    public func open(_ path: String, flags: Int32, mode: UInt32) throws(Errno) -> Int32 {
        try valueOrErrno { unsafe ciommufd_open(path, flags | O_CLOEXEC, mode) }
    }

    public func close(_ fd: Int32) throws(Errno) {
        _ = try valueOrErrno(retryOnInterrupt: false) { ciommufd_close(fd) }
    }

    @inline(__always)
    public func ioctl(_ fd: Int32, _ request: UInt, _ argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
        let result = unsafe Self.ioctlInPlace(fd, request, argument)
        if result < 0 { throw Errno(rawValue: -result) }
        return result
    }

    public func ioctlResult(_ fd: Int32, _ request: UInt, _ argument: UnsafeMutableRawPointer?) -> Int32 {
        unsafe Self.ioctlInPlace(fd, request, argument)
    }

    public var issuesIOCTLsInPlace: Bool { true }

    /// `ioctl(2)` with the system call instruction inlined into the caller: the result when
    /// it is non-negative, otherwise `-errno`; `EINTR` is retried. The ioctl catalogue calls
    /// it directly when its system is this one (``issuesIOCTLsInPlace``), so that no frame
    /// entered before the call has to be returned from before the caller sees the answer
    /// (on kernels that refill the return stack buffer on exit, every such return is
    /// mispredicted: `iommufd-bench ioctl` measures it).
    @inlinable @inline(__always)
    public static func ioctlInPlace(_ fd: Int32, _ request: UInt, _ argument: UnsafeMutableRawPointer?) -> Int32 {
        while true {
            let result = unsafe ciommufd_ioctl(fd, request, argument)
            if result != -EINTR { return result }
        }
    }

    public func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try valueOrErrno { unsafe Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    public func write(_ fd: Int32, from buffer: UnsafeRawBufferPointer) throws(Errno) -> Int {
        try valueOrErrno { unsafe Glibc.write(fd, buffer.baseAddress, buffer.count) }
    }

    public func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, offset: Int64) throws(Errno) -> Int {
        try valueOrErrno { unsafe Glibc.pread(fd, buffer.baseAddress, buffer.count, off_t(offset)) }
    }

    public func pwrite(_ fd: Int32, from buffer: UnsafeRawBufferPointer, offset: Int64) throws(Errno) -> Int {
        try valueOrErrno { unsafe Glibc.pwrite(fd, buffer.baseAddress, buffer.count, off_t(offset)) }
    }

    public func mmap(address: UnsafeMutableRawPointer?, length: Int, protection: Int32, flags: Int32, fd: Int32, offset: Int64) throws(Errno) -> UnsafeMutableRawPointer {
        let result = unsafe ciommufd_mmap(address, length, protection, flags, fd, Int(offset))
        guard let result = unsafe result, unsafe result != ciommufd_map_failed() else {
            throw Errno(rawValue: ciommufd_errno())
        }
        return unsafe result
    }

    public func munmap(_ address: UnsafeMutableRawPointer, length: Int) throws(Errno) {
        _ = try valueOrErrno { unsafe ciommufd_munmap(address, length) }
    }

    public func madvise(_ address: UnsafeMutableRawPointer, length: Int, advice: Int32) throws(Errno) {
        _ = try valueOrErrno { unsafe Glibc.madvise(address, length, advice) }
    }

    public func mbind(_ address: UnsafeMutableRawPointer, length: Int, mode: Int32, nodeMask: UInt64, flags: UInt32) throws(Errno) {
        let result = unsafe ciommufd_mbind(address, UInt(length), mode, UInt(nodeMask), flags)
        if result != 0 { throw Errno(rawValue: ciommufd_errno()) }
    }

    public func pageNodes(_ pages: [UnsafeRawPointer]) throws(Errno) -> [Int32] {
        guard unsafe !pages.isEmpty else { return [] }
        var addresses = unsafe pages.map { unsafe UnsafeMutableRawPointer(mutating: $0) as UnsafeMutableRawPointer? }
        var status = unsafe [Int32](repeating: 0, count: pages.count)
        let result = unsafe addresses.withUnsafeMutableBufferPointer { addresses in
            unsafe status.withUnsafeMutableBufferPointer { status in
                unsafe ciommufd_query_page_nodes(UInt(addresses.count), addresses.baseAddress, status.baseAddress)
            }
        }
        if result < 0 { throw Errno(rawValue: ciommufd_errno()) }
        return status
    }

    public func waitReadable(_ fds: [Int32], timeoutNanoseconds: UInt64?) throws(Errno) -> [Int] {
        var entries = fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        let deadline = timeoutNanoseconds.map { monotonicNanoseconds() &+ $0 }
        while true {
            var milliseconds: Int32 = -1
            if let deadline {
                let now = monotonicNanoseconds()
                let left = deadline > now ? deadline - now : 0
                milliseconds = Int32(clamping: (left + 999_999) / 1_000_000)
            }
            let ready = unsafe entries.withUnsafeMutableBufferPointer { unsafe Glibc.poll($0.baseAddress, nfds_t($0.count), milliseconds) }
            if ready >= 0 {
                if entries.contains(where: { $0.revents & Int16(POLLNVAL) != 0 }) { throw .badFileDescriptor }
                return entries.indices.filter { entries[$0].revents & Int16(POLLIN | POLLERR | POLLHUP) != 0 }
            }
            let error = Errno(rawValue: ciommufd_errno())
            guard error == .interrupted else { throw error }
        }
    }

    public func processID() -> Int32 { Glibc.getpid() }

    public func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        unsafe clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    public func sleep(nanoseconds: UInt64) {
        var request = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        var remaining = timespec()
        while unsafe nanosleep(&request, &remaining) == -1 && ciommufd_errno() == EINTR { request = remaining }
    }

    public func memfdCreate(_ name: String, flags: UInt32) throws(Errno) -> Int32 {
        try valueOrErrno { unsafe ciommufd_memfd_create(name, flags | CIOMMUFD_MFD_CLOEXEC) }
    }

    public func ftruncate(_ fd: Int32, length: Int64) throws(Errno) {
        _ = try valueOrErrno { Glibc.ftruncate(fd, off_t(length)) }
    }

    public func eventfd(initialValue: UInt32, flags: Int32) throws(Errno) -> Int32 {
        try valueOrErrno { ciommufd_eventfd(initialValue, flags | Int32(EFD_CLOEXEC)) }
    }

    public func readFile(_ path: String) throws(Errno) -> [UInt8] {
        let fd = try open(path, flags: O_RDONLY, mode: 0)
        defer { try? close(fd) }
        var contents: [UInt8] = []
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
        defer { unsafe chunk.deallocate() }
        while true {
            let count = unsafe try read(fd, into: chunk)
            if count == 0 { return contents }
            unsafe contents.append(contentsOf: chunk[0..<count])
        }
    }

    public func writeFile(_ path: String, _ bytes: [UInt8]) throws(Errno) {
        try writeWhole(path, bytes, flags: O_WRONLY, mode: 0)
    }

    public func createFile(_ path: String, _ bytes: [UInt8]) throws(Errno) {
        try writeWhole(path, bytes, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
    }

    /// One `write` of all of `bytes` (sysfs attributes take a value in a single write).
    private func writeWhole(_ path: String, _ bytes: [UInt8], flags: Int32, mode: UInt32) throws(Errno) {
        let fd = try open(path, flags: flags, mode: mode)
        defer { try? close(fd) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 8)
        defer { unsafe buffer.deallocate() }
        unsafe buffer.copyBytes(from: bytes)
        let written = unsafe try write(fd, from: UnsafeRawBufferPointer(rebasing: buffer[0..<bytes.count]))
        if written != bytes.count { throw Errno.ioError }
    }

    public func removeFile(_ path: String) throws(Errno) {
        _ = try valueOrErrno { unsafe Glibc.unlink(path) }
    }

    public func readLink(_ path: String) throws(Errno) -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = try valueOrErrno { unsafe Glibc.readlink(path, &buffer, Int(PATH_MAX)) }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public func listDirectory(_ path: String) throws(Errno) -> [String] {
        guard let directory = unsafe opendir(path) else { throw Errno(rawValue: ciommufd_errno()) }
        defer { unsafe closedir(directory) }
        var names: [String] = []
        while let entry = unsafe readdir(directory) {
            let name = unsafe withUnsafeBytes(of: entry.pointee.d_name) { raw in
                unsafe String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    public func memoryLockLimit() throws(Errno) -> ResourceLimit {
        var current: UInt64 = 0
        var maximum: UInt64 = 0
        _ = try valueOrErrno { unsafe ciommufd_getrlimit_memlock(&current, &maximum) }
        return ResourceLimit(current: current == .max ? nil : current, maximum: maximum == .max ? nil : maximum)
    }

    public func setMemoryLockLimit(_ limit: ResourceLimit) throws(Errno) {
        _ = try valueOrErrno { ciommufd_setrlimit_memlock(limit.current ?? .max, limit.maximum ?? .max) }
    }
}
