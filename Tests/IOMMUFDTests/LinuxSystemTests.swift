import CIOMMUFD
import Foundation
import IOMMUFD
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
        let iommufd = IOMMUFD(adopting: fd, system: system, closeOnDeinit: false)
        #expect(errnoOf { try iommufd.allocateIOAS() } == .inappropriateIOCTLForDevice)
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

    @Test("exactly one Swift source file makes the real system calls")
    func oneFileCallsTheKernel() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let sources = root.appendingPathComponent("Sources")
        let enumerator = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)!
        var callers: [String] = []
        let pattern = try NSRegularExpression(pattern: #"ciommufd_(ioctl|open|close|mmap|munmap|memfd_create|eventfd)\(|Glibc\.(read|write|pread|pwrite|ftruncate|readlink|madvise)\(|clibnuma_(mbind|query_pages)\(|\bopendir\("#)
        for case let file as URL in enumerator where file.pathExtension == "swift" {
            let text = try String(contentsOf: file, encoding: .utf8)
            if pattern.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil {
                callers.append(file.lastPathComponent)
            }
        }
        #expect(callers == ["LinuxSystem.swift"])
    }
}
