import Edu
import CIOMMUFD
import Foundation
import IOMMUFD
import SystemPackage
import Testing
import VFIO
#if canImport(Glibc)
import Glibc
#endif

/// REFERENCE §2 group I: a process that dies holding a device and DMA mappings, and
/// descriptors across exec. The child process is this test binary again, running only the
/// helper below (selected by the environment), so it exercises the toolkit itself.
extension HardwareSuite {
    @Suite("Hardware: process faults (group I)", .enabled(if: Hardware.eduDevice != nil, Hardware.eduReason), .serialized)
    struct ProcessFaultTests {
        /// Set in the child: the file the helper writes "ready" to once edu is DMAing.
        static let readyFileVariable = "IOMMUFD_FAULT_CHILD_READY_FILE"

        /// Starts this test binary running only `filter`, with `environment` added; stdout and
        /// stderr go to `log`. Returns the child's pid.
        static func spawnSelf(filter: String, environment extra: [String: String], log: String) throws -> pid_t {
            let binary = CommandLine.arguments[0]
            let arguments = [binary, "--testing-library", "swift-testing", "--filter", filter]
            var environment = ProcessInfo.processInfo.environment
            for (key, value) in extra { environment[key] = value }
            let argv = arguments.map { strdup($0) } + [nil]
            let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
            defer { for pointer in argv + envp { free(pointer) } }
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
            var pid: pid_t = 0
            let result = posix_spawn(&pid, binary, &actions, nil, argv, envp)
            guard result == 0 else { throw Errno(rawValue: result) }
            return pid
        }

        /// The child's side: claims edu, maps a buffer, and keeps edu copying it until killed.
        @Test("(helper for the SIGKILL test: runs only in the child it starts)",
              .enabled(if: ProcessInfo.processInfo.environment[readyFileVariable] != nil, "runs only as the SIGKILL test's child"))
        func dmaUntilKilled() throws {
            let readyFile = try #require(ProcessInfo.processInfo.environment[Self.readyFileVariable])
            let address = try #require(Hardware.eduDevice)
            let owned = try VFIOPCIDevice(address, path: .only(.iommufdCdev))
            try owned.device.setBusMaster(true)
            let edu = try EduDevice(owned.device)
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
            buffer.initializeMemory(as: UInt8.self, repeating: 0x5a)
            let mapping = try unsafe owned.addressSpace.map(UnsafeRawBufferPointer(buffer), at: IOVA(0x10_0000))
            try edu.copyToDevice(from: mapping.iova, count: 64)
            _ = FileManager.default.createFile(atPath: readyFile, contents: Data("ready".utf8))
            while true {  // until SIGKILL
                try edu.copyToDevice(from: mapping.iova, count: EduDevice.maximumTransfer)
                try edu.copyToHost(to: mapping.iova, count: EduDevice.maximumTransfer)
            }
        }

        @Test("a process killed (SIGKILL) while edu DMAs through its mapping: the device can be claimed again at once (no EBUSY), DMA works, and nothing of the child is left")
        func killedWhileDMAing() throws {
            let address = try #require(Hardware.eduDevice)
            let readyFile = NSTemporaryDirectory() + "iommufd-fault-ready-\(getpid())"
            let log = NSTemporaryDirectory() + "iommufd-fault-child-\(getpid()).log"
            unlink(readyFile)
            let child = try Self.spawnSelf(filter: "dmaUntilKilled", environment: [Self.readyFileVariable: readyFile], log: log)
            var ready = false
            for _ in 0..<600 where !ready {  // up to 60 s under TCG
                ready = FileManager.default.fileExists(atPath: readyFile)
                if !ready { usleep(100_000) }
            }
            let childLog = { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
            #expect(ready, "the child never got edu DMAing: \(childLog().suffix(2000))")
            kill(child, SIGKILL)
            var status: Int32 = 0
            #expect(waitpid(child, &status, 0) == child)
            #expect(status & 0x7f == SIGKILL, "the child ended by signal \(status & 0x7f), not SIGKILL: \(childLog().suffix(2000))")
            unlink(readyFile)
            unlink(log)

            // The kernel released the child's device, context, mappings and pins with its files.
            let owned = try VFIOPCIDevice(address, path: .only(.iommufdCdev))
            try owned.device.setBusMaster(true)
            let edu = try EduDevice(owned.device)
            let buffer = Hardware.pinnableBuffer(byteCount: 4096)
            for index in 0..<4096 { buffer[index] = UInt8(truncatingIfNeeded: index) }
            let mapping = try owned.addressSpace.map(UnsafeRawBufferPointer(buffer), at: IOVA(0x10_0000))
            try edu.copyToDevice(from: mapping.iova, count: 64)
            try edu.copyToHost(to: IOVA(0x10_0000 + 2048), count: 64)
            #expect((0..<64).allSatisfy { buffer[2048 + $0] == UInt8(truncatingIfNeeded: $0) })
            try owned.device.setBusMaster(false)
            try owned.addressSpace.unmap(mapping)
        }

        /// What the child of the fork test found, one bit each, as its exit status.
        enum ForkChildFinding: Int32 {
            case unmapRefused = 1
            case busMasterWriteRefused = 2
            case configReadRefused = 4
            case kernelAnswersTheInheritedDescriptor = 8
        }

        @Test("fork after mapping: in the child the parent's handles refuse (unmap, config write and read: EPERM, nothing issued) though the kernel itself answers the inherited descriptor; the parent's mapping, Bus Master Enable and DMA are untouched, and the pinned buffer stays the parent's")
        func forkAfterMapping() throws {
            let address = try #require(Hardware.eduDevice)
            let owned = try VFIOPCIDevice(address, path: .only(.iommufdCdev))
            guard case .iommufd(let ioas) = owned.addressSpace else { Issue.record("not an iommufd context"); return }
            try owned.device.setBusMaster(true)
            let edu = try EduDevice(owned.device)
            let buffer = Hardware.pinnableBuffer(byteCount: 4096)
            let mapping = try owned.addressSpace.map(UnsafeRawBufferPointer(buffer), at: IOVA(0x10_0000))
            let iommufd = ioas.iommufd.fileDescriptor.rawValue
            // Everything the child runs is warmed up here (type metadata, the refusal's
            // explanation), so the child of this multi-threaded process takes no lock.
            var warm = IOMMUErrorContext()
            warm.handleFromBeforeFork = true
            _ = IOMMUError(.ioasUnmap, .notPermitted, warm).explanation
            func refused(_ body: () throws(IOMMUError) -> Void) -> Bool {
                do throws(IOMMUError) { try body(); return false } catch { return error.errno == .notPermitted && error.context.handleFromBeforeFork }
            }
            _ = refused { () throws(IOMMUError) in }

            let child = fork()
            if child == 0 {
                var found: Int32 = 0
                if refused({ () throws(IOMMUError) in try owned.addressSpace.unmap(mapping) }) { found |= ForkChildFinding.unmapRefused.rawValue }
                if refused({ () throws(IOMMUError) in try owned.device.setBusMaster(false) }) { found |= ForkChildFinding.busMasterWriteRefused.rawValue }
                if refused({ () throws(IOMMUError) in _ = try owned.device.readConfiguration(UInt16.self, at: 4) }) { found |= ForkChildFinding.configReadRefused.rawValue }
                // Without the toolkit's guard: IOMMU_IOAS_IOVA_RANGES on the inherited
                // descriptor reaches the parent's IOAS (a query, so it changes nothing).
                var ranges = iommu_ioas_iova_ranges()
                ranges.size = UInt32(MemoryLayout<iommu_ioas_iova_ranges>.size)
                ranges.ioas_id = ioas.id.rawValue
                let answer = ciommufd_ioctl(iommufd, UInt(IOMMU_IOAS_IOVA_RANGES), &ranges)
                if answer == 0 || answer == -EMSGSIZE { found |= ForkChildFinding.kernelAnswersTheInheritedDescriptor.rawValue }
                _exit(found)
            }
            #expect(child > 0, "fork failed: errno \(errno)")
            guard child > 0 else { return }
            var status: Int32 = 0
            var waited: pid_t = 0
            for _ in 0..<300 where waited == 0 {  // up to 30 s under TCG
                waited = waitpid(child, &status, WNOHANG)
                if waited == 0 { usleep(100_000) }
            }
            if waited == 0 { kill(child, SIGKILL); _ = waitpid(child, &status, 0) }
            #expect(waited == child, "the child did not finish in 30 s (killed)")
            let exited = status & 0x7f == 0
            let findings = (status >> 8) & 0xff
            #expect(exited, "the child ended by signal \(status & 0x7f)")
            #expect(findings & ForkChildFinding.unmapRefused.rawValue != 0, "the child's unmap through the parent's handle was not refused")
            #expect(findings & ForkChildFinding.busMasterWriteRefused.rawValue != 0, "the child's config write through the parent's handle was not refused")
            #expect(findings & ForkChildFinding.configReadRefused.rawValue != 0, "the child's config read through the parent's handle was not refused")
            #expect(findings & ForkChildFinding.kernelAnswersTheInheritedDescriptor.rawValue != 0, "the kernel did not answer the child on the inherited descriptor")

            // The parent: mapping, Bus Master Enable and DMA as before; written after the
            // fork, the buffer is still the page the IOMMU maps (the kernel copies pinned
            // pages for the child at fork instead of sharing them copy-on-write).
            #expect(try owned.device.readConfiguration(UInt16.self, at: 4) & 0x4 != 0, "Bus Master Enable still set")
            for index in 0..<4096 { buffer[index] = UInt8(truncatingIfNeeded: index &* 7) }
            try edu.copyToDevice(from: mapping.iova, count: 64)
            try edu.copyToHost(to: IOVA(0x10_0000 + 2048), count: 64)
            #expect((0..<64).allSatisfy { buffer[2048 + $0] == UInt8(truncatingIfNeeded: $0 &* 7) }, "edu reads what the parent wrote after the fork")
            try owned.device.setBusMaster(false)
            try owned.addressSpace.unmap(mapping)
        }

        @Test("no descriptor the toolkit opens survives exec: a child started with posix_spawn sees none of /dev/iommu, the device, its eventfds or a memfd")
        func nothingSurvivesExec() throws {
            let address = try #require(Hardware.eduDevice)
            let owned = try VFIOPCIDevice(address, path: .only(.iommufdCdev))
            let vectors = try owned.device.enableInterrupts(preferring: [.msix, .msi, .intx])
            let memfd = try LinuxSystem().memfdCreate("exec-check", flags: 0)
            defer { try? LinuxSystem().close(memfd) }
            let listing = NSTemporaryDirectory() + "iommufd-exec-fds-\(getpid())"
            defer { unlink(listing) }
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 1, listing, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sh"), strdup("-c"), strdup("ls -l /proc/$$/fd"), nil]
            defer { for pointer in argv { free(pointer) } }
            var pid: pid_t = 0
            #expect(posix_spawn(&pid, "/bin/sh", &actions, nil, argv, environ) == 0)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            let text = try String(contentsOfFile: listing, encoding: .utf8)
            let leaked = text.split(separator: "\n").filter { line in
                ["/dev/iommu", "/dev/vfio", "anon_inode:[eventfd]", "/memfd:", "anon_inode:[vfio"].contains { line.contains($0) }
            }
            #expect(text.contains("->"), "the child listed no descriptors at all: \(text)")
            #expect(leaked.isEmpty, "descriptors that survived exec: \(leaked)")
            _ = vectors
        }
    }
}
