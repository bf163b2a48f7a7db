import CIOMMUFD
import Foundation
import Scenarios
import Synchronization
import IOMMUFD
import SystemPackage
import Testing
import VFIO
#if canImport(Glibc)
import Glibc
#endif

/// REFERENCE §2 group J: races on the real kernel. Every errno a racing call may get is
/// named; anything else fails the test.
extension HardwareSuite {
    @Suite("Hardware: races (group J)", .enabled(if: Hardware.eduDevice != nil, Hardware.eduReason), .serialized)
    struct RaceTests {
        /// Counts of the outcomes of one kind of call.
        final class Outcomes: @unchecked Sendable {
            private let lock = NSLock()
            private var counts: [String: Int] = [:]
            func record(_ outcome: String) { lock.lock(); counts[outcome, default: 0] += 1; lock.unlock() }
            var snapshot: [String: Int] { lock.lock(); defer { lock.unlock() }; return counts }
        }

        static func name(_ body: () throws(IOMMUError) -> Void) -> String {
            do throws(IOMMUError) { try body(); return "ok" } catch { return ErrnoName.name(of: error.errno) }
        }

        @Test("IOAS_DESTROY racing IOAS_MAP/UNMAP and IOVA_RANGES on one IOAS: only ok, EBUSY (destroy while a call holds the IOAS) and ENOENT (after it) occur, and the IOAS ends destroyed")
        func destroyRacesMapAndRanges() throws {
            let system = LinuxSystem()
            let iommufd = try IOMMUFD(system: system)
            let seam = IOCTLSeam(system)
            let fd = iommufd.fileDescriptor.rawValue
            let buffer = Hardware.pinnableBuffer(byteCount: 4 * 4096)
            let address = UInt64(UInt(bitPattern: buffer.baseAddress))
            var racedRounds = 0
            for round in 0..<8 {
                let ioas = try IOMMUFDIOCTL.ioasAlloc(seam, fd, fileID: #fileID, line: #line)
                let maps = Outcomes(), unmaps = Outcomes(), ranges = Outcomes(), destroys = Outcomes()
                let destroyed = Atomic(false)
                let progress = Atomic(0)
                DispatchQueue.concurrentPerform(iterations: 3) { worker in
                    switch worker {
                    case 0:
                        for _ in 0..<400 {
                            progress.add(1, ordering: .relaxed)
                            maps.record(Self.name { () throws(IOMMUError) in
                                _ = try IOMMUFDIOCTL.ioasMap(seam, fd, ioas: ioas, flags: IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_FIXED_IOVA,
                                                             userAddress: address, length: 4 * 4096, iova: 0x10_0000, fileID: #fileID, line: #line)
                            })
                            unmaps.record(Self.name { () throws(IOMMUError) in
                                _ = try IOMMUFDIOCTL.ioasUnmap(seam, fd, ioas: ioas, iova: 0x10_0000, length: 4 * 4096, fileID: #fileID, line: #line)
                            })
                        }
                    case 1:
                        let entries = UnsafeMutableBufferPointer<iommu_iova_range>.allocate(capacity: 8)
                        defer { entries.deallocate() }
                        for _ in 0..<400 {
                            ranges.record(Self.name { () throws(IOMMUError) in
                                _ = try IOMMUFDIOCTL.ioasIOVARanges(seam, fd, ioas: ioas, into: entries, fileID: #fileID, line: #line)
                            })
                        }
                    default:
                        // Destroy part-way through the others' loops, later each round.
                        while progress.load(ordering: .relaxed) < 40 * (round + 1) { sched_yield() }
                        while !destroyed.load(ordering: .relaxed) {
                            let outcome = Self.name { () throws(IOMMUError) in try IOMMUFDIOCTL.destroy(seam, fd, id: ioas, fileID: #fileID, line: #line) }
                            destroys.record(outcome)
                            if outcome == "ok" { destroyed.store(true, ordering: .relaxed) }
                        }
                    }
                }
                #expect(Set(maps.snapshot.keys).isSubset(of: ["ok", "ENOENT"]), "round \(round) maps: \(maps.snapshot)")
                #expect(Set(unmaps.snapshot.keys).isSubset(of: ["ok", "ENOENT"]), "round \(round) unmaps: \(unmaps.snapshot)")
                #expect(Set(ranges.snapshot.keys).isSubset(of: ["ok", "ENOENT"]), "round \(round) ranges: \(ranges.snapshot)")
                #expect(Set(destroys.snapshot.keys).isSubset(of: ["ok", "EBUSY"]) && destroys.snapshot["ok"] == 1, "round \(round) destroys: \(destroys.snapshot)")
                let after = Self.name { () throws(IOMMUError) in try IOMMUFDIOCTL.destroy(seam, fd, id: ioas, fileID: #fileID, line: #line) }
                #expect(after == "ENOENT", "the IOAS is gone after the race")
                // The destroy landed while the others were still calling: some got ENOENT, some ok.
                if maps.snapshot["ok", default: 0] + ranges.snapshot["ok", default: 0] > 0
                    && maps.snapshot["ENOENT", default: 0] + ranges.snapshot["ENOENT", default: 0] > 0 { racedRounds += 1 }
                print("destroy race round \(round): map \(maps.snapshot) unmap \(unmaps.snapshot) ranges \(ranges.snapshot) destroy \(destroys.snapshot)")
            }
            #expect(racedRounds >= 4, "the destroy overlapped the other calls in only \(racedRounds) of 8 rounds")
        }

        /// Set in a child: the file the helper writes its bind outcome to.
        static let outcomeFileVariable = "IOMMUFD_RACE_CHILD_OUTCOME_FILE"

        /// The child's side: binds edu's cdev to its own iommufd, writes the outcome, holds it.
        @Test("(helper for the two-process bind race: runs only in the children it starts)",
              .enabled(if: ProcessInfo.processInfo.environment[outcomeFileVariable] != nil, "runs only as the bind race's child"))
        func bindAndHold() throws {
            let outcomeFile = try #require(ProcessInfo.processInfo.environment[Self.outcomeFileVariable])
            let address = try #require(Hardware.eduDevice)
            let iommufd = try IOMMUFD()
            let device = try VFIODevice(address)
            let outcome = Self.name { () throws(IOMMUError) in try device.bind(to: iommufd) }
            _ = FileManager.default.createFile(atPath: outcomeFile, contents: Data(outcome.utf8))
            if outcome == "ok" { sleep(60) }  // hold the device until the parent kills it
        }

        @Test("two processes binding edu's cdev at once: exactly one wins; the other gets the kernel's errno")
        func twoProcessesBind() throws {
            let files = (0..<2).map { NSTemporaryDirectory() + "iommufd-bind-race-\(getpid())-\($0)" }
            for file in files { unlink(file) }
            let children = try files.enumerated().map { index, file in
                try ProcessFaultTests.spawnSelf(filter: "bindAndHold", environment: [Self.outcomeFileVariable: file],
                                                log: NSTemporaryDirectory() + "iommufd-bind-race-\(getpid())-\(index).log")
            }
            var outcomes: [String] = []
            for _ in 0..<600 {  // up to 60 s under TCG
                outcomes = files.compactMap { try? String(contentsOfFile: $0, encoding: .utf8) }
                if outcomes.count == 2 { break }
                usleep(100_000)
            }
            for child in children { kill(child, SIGKILL) }
            for child in children { var status: Int32 = 0; _ = waitpid(child, &status, 0) }
            for (index, file) in files.enumerated() {
                unlink(file)
                unlink(NSTemporaryDirectory() + "iommufd-bind-race-\(getpid())-\(index).log")
            }
            #expect(outcomes.count == 2, "both children reported: \(outcomes)")
            #expect(outcomes.filter { $0 == "ok" }.count == 1, "exactly one bind wins: \(outcomes)")
            let loser = outcomes.first { $0 != "ok" }
            // vfio_df_open: a device already opened through a cdev refuses another (7.3, measured in the VM lane).
            #expect(loser == "EINVAL", "the loser's errno: \(loser ?? "none")")
            print("two-process bind race: \(outcomes.sorted())")
        }
    }
}
