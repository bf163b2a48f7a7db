import CIOMMUFD
import Foundation
import IOMMUFD
import MockKernel
import SystemPackage
import Testing

/// The real seam on this machine (no /dev/iommu here: Debian's kernels lack CONFIG_IOMMUFD).
@Suite("LinuxSystem")
struct LinuxSystemTests {
    let system = LinuxSystem()

    @Test("an ioctl on /dev/null fails at once with ENOTTY")
    func ioctlOnDevNull() throws {
        let fd = try system.open("/dev/null", flags: O_RDWR, mode: 0)
        defer { try? system.close(fd) }
        var command = iommu_ioas_alloc(size: 12, flags: 0, out_ioas_id: 0)
        #expect(throws: Errno.inappropriateIOCTLForDevice) { _ = try system.ioctl(fd, IOMMU_IOAS_ALLOC, &command) }
        // And through the typed layer, as an IOMMUError with the operation.
        let iommufd = IOMMUFD(adopting: FileDescriptor(rawValue: fd), system: system, closeOnDeinit: false)
        #expect(errnoOf { try iommufd.allocateIOAS() } == .inappropriateIOCTLForDevice)
    }

    @Test("the real kernel is called in place: -errno, errno untouched, EINTR retried; a model is reached through the seam")
    func ioctlInPlace() throws {
        let fd = try system.open("/dev/null", flags: O_RDWR, mode: 0)
        defer { try? system.close(fd) }
        var command = iommu_ioas_unmap(size: 24, ioas_id: 1, iova: 0x100000, length: 0x1000)
        errno = 0
        let result = LinuxSystem.ioctlInPlace(fd, IOMMU_IOAS_UNMAP, &command)
        #expect(result == -Errno.inappropriateIOCTLForDevice.rawValue)
        #expect(errno == 0, "the in-place call answers -errno and leaves errno alone")
        #expect(system.ioctlResult(fd, IOMMU_IOAS_UNMAP, &command) == result)
        #expect(LinuxSystem.ioctlInPlace(-1, IOMMU_IOAS_UNMAP, &command) == -Errno.badFileDescriptor.rawValue)
        // Only LinuxSystem issues in place; MockKernel (and any other seam) is asked through
        // ioctlResult, which the mock records in its trace.
        #expect(system.issuesIOCTLsInPlace)
        let kernel = MockKernel()
        #expect(!kernel.issuesIOCTLsInPlace)
        #expect(IOCTLSeam(system).inPlace && !IOCTLSeam(kernel).inPlace)
        let iommufd = try IOMMUFD(system: kernel)
        let before = kernel.trace.count
        _ = try iommufd.allocateIOAS()
        #expect(kernel.trace.count > before)
    }

    @Test("every descriptor LinuxSystem opens is close-on-exec")
    func closeOnExec() throws {
        let fd = try system.open("/dev/null", flags: O_RDONLY, mode: 0)
        defer { try? system.close(fd) }
        #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC != 0)
        let memfd = try system.memfdCreate("t", flags: 0)
        defer { try? system.close(memfd) }
        #expect(fcntl(memfd, F_GETFD) & FD_CLOEXEC != 0)
        let event = try system.eventfd(initialValue: 0, flags: 0)
        defer { try? system.close(event) }
        #expect(fcntl(event, F_GETFD) & FD_CLOEXEC != 0)
    }

    @Test("memfd, ftruncate, mmap and munmap work on the real kernel")
    func memoryCalls() throws {
        let memfd = try system.memfdCreate("dma", flags: 0)
        defer { try? system.close(memfd) }
        try system.ftruncate(memfd, length: 8192)
        let view = try system.mmap(address: nil, length: 8192, protection: PROT_READ | PROT_WRITE, flags: MAP_SHARED, fd: memfd, offset: 0)
        view.storeBytes(of: 0x5a, as: UInt8.self)
        var byte: UInt8 = 0
        _ = try withUnsafeMutableBytes(of: &byte) { try system.pread(memfd, into: $0, offset: 0) }
        #expect(byte == 0x5a)
        try system.munmap(view, length: 8192)
        #expect(throws: Errno.invalidArgument) { _ = try system.mmap(address: nil, length: 0, protection: PROT_READ, flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0) }
    }

    @Test("file helpers read /proc and sysfs")
    func fileHelpers() throws {
        let status = String(decoding: try system.readFile("/proc/self/status"), as: UTF8.self)
        #expect(status.contains("VmLck"))
        let observed25 = try system.readLink("/proc/self/exe").isEmpty
        #expect(!observed25)
        #expect(try system.listDirectory("/proc/self/fd").count >= 3)
        #expect(throws: Errno.noSuchFileOrDirectory) { try system.readFile("/nonexistent/file") }
        _ = try system.memoryLockLimit()
    }

    @Test("opening /dev/iommu where the kernel lacks it gives a typed, explained error")
    func noIOMMUHere() throws {
        if FileManager.default.fileExists(atPath: "/dev/iommu") {
            _ = try IOMMUFD(system: system)
            return
        }
        do {
            _ = try IOMMUFD(system: system)
            Issue.record("open must fail without /dev/iommu")
        } catch {
            #expect(error.errno == .noSuchFileOrDirectory)
            #expect(error.description.contains("CONFIG_IOMMUFD"))
        }
    }

    /// Calls that reach the kernel, or libc wrappers of them, outside the seam.
    static let systemCallPattern = #"ciommufd_(ioctl|open|close|mmap|munmap|memfd_create|eventfd|mbind|query_page_nodes)\(|Glibc\.(read|write|pread|pwrite|ftruncate|readlink|madvise|poll|getpid)\(|\b(opendir|usleep|nanosleep|clock_gettime|getpid|sched_yield|stat|lstat|fstat|poll|epoll_wait|sysconf)\("#

    /// The files besides `LinuxSystem.swift` that may call the kernel directly, and why.
    static let allowed: [String: String] = [
        "Sources/IOMMUFDSystem/LockedState.swift":
            "the seam's own lock: a pthread mutex and condition variable whose deadline is read from CLOCK_MONOTONIC",
        "Sources/DMAMemory/SharedFreeStack.swift":
            "sched_yield in the pool's spin-lock back-off: a hot path, not a kernel service the model could answer",
        "Sources/PCIDatabase/LibPCI.swift":
            "stat of the sysfs root handed to libpci, which reads the real filesystem itself (real systems only)",
        "tools/iommufd-bench/CBenchBaseline":
            "the C baseline issues the ioctl directly: that is what it measures",
        "Sources/MockKernel/HostMemory.swift":
            "MockKernel's memfds are host memfds, each mmap of one a host mapping of its own, so two mappings of a memfd alias and a mapped memfd grows as on Linux",
        "hw-tests/Scenarios/ScenarioProcesses.swift":
            "a scenario's second process on the real kernel is a forked child of the runner that talks over pipes: process control the seam does not model",
        "hw-tests/HardwareTests/ProcessFaultTests.swift":
            "the process-fault tests (real kernel only) start, poll for and kill a child process: process control the seam does not model",
        "hw-tests/HardwareTests/ChangeProcessTests.swift":
            "the change-process hand-off (real kernel only) forks, passes the answer through a pipe and reads /proc/<pid>/status: processes the seam does not model",
        "hw-tests/HardwareTests/RaceTests.swift":
            "the race tests (real kernel only) stagger threads and poll for child processes: timing the seam does not model",
    ]

    @Test("only LinuxSystem calls the kernel: every target is scanned, with an explicit allow-list")
    func oneFileCallsTheKernel() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let pattern = try NSRegularExpression(pattern: Self.systemCallPattern)
        var callers: [String] = []
        for top in ["Sources", "hw-tests", "tools"] {
            let enumerator = try #require(FileManager.default.enumerator(at: root.appendingPathComponent(top), includingPropertiesForKeys: nil))
            for case let file as URL in enumerator where file.pathExtension == "swift" {
                let relative = String(file.path.dropFirst(root.path.count + 1))
                let text = try String(contentsOf: file, encoding: .utf8)
                let code = text.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("//") }.joined(separator: "\n")
                if pattern.firstMatch(in: code, range: NSRange(code.startIndex..., in: code)) != nil {
                    callers.append(relative)
                }
            }
        }
        let unexpected = callers.filter { caller in
            caller != "Sources/IOMMUFDSystem/LinuxSystem.swift" && !Self.allowed.keys.contains { caller.hasPrefix($0) }
        }
        #expect(unexpected.isEmpty, "system calls outside the seam: \(unexpected)")
        #expect(callers.contains("Sources/IOMMUFDSystem/LinuxSystem.swift"), "the scan must see the seam itself")
        let unused = Self.allowed.keys.filter { key in !key.hasPrefix("tools/iommufd-bench/CBench") && !callers.contains { $0.hasPrefix(key) } }
        #expect(unused.isEmpty, "allow-list entries that no longer call the kernel: \(unused)")
    }
}
