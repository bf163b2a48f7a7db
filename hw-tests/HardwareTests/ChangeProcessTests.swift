import CIOMMUFD
import Foundation
@_spi(Selftest) import IOMMUFD
import SystemPackage
import Testing
#if canImport(Glibc)
import Glibc
#endif

extension HardwareSuite {
    /// `IOMMU_IOAS_CHANGE_PROCESS` handing pinned memory over a fork, as the kernel's
    /// `change_process.basic` does (tools/testing/selftests/iommu/iommufd.c:291-334): the
    /// suite runs without `CAP_IPC_LOCK`, so the pins are charged (VmPin); a mock domain pins
    /// a memfd page; the child adopts the inherited descriptor and takes the accounting.
    @Suite("Hardware: IOMMU_IOAS_CHANGE_PROCESS across a fork", .enabled(if: Hardware.hasSelftest, Hardware.selftestReason), .serialized)
    struct ChangeProcessTests {
        /// `VmPin` of a process in kB, read from `/proc/<pid>/status` with raw calls (the
        /// parent reads the child's too).
        static func pinnedKilobytes(_ pid: pid_t) -> Int? {
            guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
            for line in text.split(separator: "\n") where line.hasPrefix("VmPin:") {
                return Int(line.dropFirst(6).trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "")
            }
            return nil
        }

        @Test("user memory is EINVAL, a memfd page moves: the child adopts the descriptor, changes process, and VmPin goes from the parent to the child")
        func handoffAcrossFork() throws {
            let system = LinuxSystem()
            let iommufd = try IOMMUFD(system: system)
            let ioas = try iommufd.allocateIOAS()
            let device = try ioas.selftestAttachMockDomain()
            defer { try? iommufd.destroy(device.selftestID) }
            let page = 4096

            // User memory stays with the process that mapped it.
            let buffer = Hardware.pinnableBuffer(byteCount: page)
            let userMapping = try unsafe ioas.map(UnsafeRawBufferPointer(buffer), at: IOVA(0x100_0000))
            do throws(IOMMUError) {
                try iommufd.changeProcess()
                Issue.record("IOMMU_IOAS_CHANGE_PROCESS with user memory mapped succeeded")
            } catch {
                #expect(error.errno == .invalidArgument)
            }
            try ioas.unmap(userMapping)

            let memfd = try system.memfdCreate("change-process", flags: 0)
            defer { try? system.close(memfd) }
            try system.ftruncate(memfd, length: Int64(page))
            let before = Self.pinnedKilobytes(getpid()) ?? -1
            _ = try ioas.mapFile(fileDescriptor: FileDescriptor(rawValue: memfd), offset: 0, length: UInt64(page), at: IOVA(0x100_0000))
            let pinned = Self.pinnedKilobytes(getpid()) ?? -1
            #expect(pinned - before == page / 1024, "the mock domain pins the page, charged to this process")
            try iommufd.changeProcess()  // the same process: nothing moves
            #expect(Self.pinnedKilobytes(getpid()) == pinned)

            var toChild: [Int32] = [0, 0], toParent: [Int32] = [0, 0]
            #expect(pipe(&toChild) == 0 && pipe(&toParent) == 0)
            let fd = iommufd.fileDescriptor.rawValue
            let child = fork()
            if child == 0 {
                // Adopt the inherited descriptor (the parent's handle refuses in a child).
                let adopted = IOMMUFD(adopting: FileDescriptor(rawValue: fd), system: LinuxSystem(), closeOnDeinit: false)
                var answer: Int32 = 0
                do throws(IOMMUError) { try adopted.changeProcess() } catch { answer = error.errno.rawValue }
                _ = write(toParent[1], &answer, 4)
                var go: UInt8 = 0
                _ = read(toChild[0], &go, 1)
                _exit(0)
            }
            #expect(child > 0)
            guard child > 0 else { return }
            var answer: Int32 = -1
            #expect(read(toParent[0], &answer, 4) == 4)
            #expect(answer == 0, "the child's IOMMU_IOAS_CHANGE_PROCESS: errno \(answer)")
            let parentAfter = Self.pinnedKilobytes(getpid()) ?? -1
            let childAfter = Self.pinnedKilobytes(child) ?? -1
            var go: UInt8 = 1
            _ = write(toChild[1], &go, 1)
            var status: Int32 = 0
            _ = waitpid(child, &status, 0)
            for descriptor in toChild + toParent { close(descriptor) }
            #expect(parentAfter == pinned - page / 1024, "the parent lets go of the page")
            #expect(childAfter == page / 1024, "the child is charged the page")
        }
    }
}
