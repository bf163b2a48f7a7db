import CIOMMUFD
import Foundation
import Scenarios
import Synchronization
@_spi(Selftest) import IOMMUFD
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
        /// Set in a child: `bind` (edu's cdev) or `group` (edu's legacy group node).
        static let modeVariable = "IOMMUFD_RACE_CHILD_MODE"

        /// The child's side: binds edu's cdev to its own iommufd, writes the outcome, holds it.
        @Test("(helper for the two-process bind race: runs only in the children it starts)",
              .enabled(if: ProcessInfo.processInfo.environment[outcomeFileVariable] != nil, "runs only as the bind race's child"))
        func bindAndHold() throws {
            let outcomeFile = try #require(ProcessInfo.processInfo.environment[Self.outcomeFileVariable])
            let address = try #require(Hardware.eduDevice)
            let iommufd = try IOMMUFD()
            let device = try VFIODevice(address)
            let outcome: String
            if ProcessInfo.processInfo.environment[Self.modeVariable] == "group" {
                // Open edu's legacy group node, as a VMM on the type1 path does.
                let link = try LinuxSystem().readLink("/sys/bus/pci/devices/\(address)/iommu_group")
                do { _ = try LinuxSystem().open("/dev/vfio/" + (link.split(separator: "/").last.map(String.init) ?? "?"), flags: O_RDWR, mode: 0); outcome = "ok" }
                catch { outcome = ErrnoName.name(of: error) }
            } else {
                outcome = Self.name { () throws(IOMMUError) in try device.bind(to: iommufd) }
            }
            _ = FileManager.default.createFile(atPath: outcomeFile, contents: Data(outcome.utf8))
            if outcome == "ok" { sleep(60) }  // hold the device until the parent kills it
        }

        @Test("two processes claiming edu at once, through its cdev or its legacy group: exactly one wins; the other gets the kernel's errno (EINVAL for a bound cdev, EBUSY for an open group)",
              arguments: [("bind", "EINVAL"), ("group", "EBUSY")])
        func twoProcessesBind(mode: String, loserErrno: String) throws {
            let files = (0..<2).map { NSTemporaryDirectory() + "iommufd-bind-race-\(getpid())-\($0)" }
            for file in files { unlink(file) }
            let children = try files.enumerated().map { index, file in
                try ProcessFaultTests.spawnSelf(filter: "bindAndHold", environment: [Self.outcomeFileVariable: file, Self.modeVariable: mode],
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
            // vfio_df_open refuses a second cdev open of an opened device; a group node opens once (measured in the VM lane).
            #expect(loser == loserErrno, "the loser's errno: \(loser ?? "none")")
            print("two-process \(mode) race: \(outcomes.sorted())")
        }
    }
}

extension HardwareSuite.RaceTests {
    /// A small deterministic generator (SplitMix64), so every soak run makes the same calls.
    struct SplitMix64 {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9e37_79b9_7f4a_7c15
            var z = state
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
        mutating func below(_ bound: UInt64) -> UInt64 { next() % bound }
    }

    @Test("a soak: four threads with fixed seeds map, unmap, copy, query and destroy on one context with a mock domain for a bounded time (IOMMUFD_SOAK_SECONDS, 60 by default); no errno at all, and nothing left (the leak check)",
          .enabled(if: Hardware.hasSelftest, Hardware.selftestReason))
    func soak() throws {
        let seconds = Double(ProcessInfo.processInfo.environment["IOMMUFD_SOAK_SECONDS"] ?? "") ?? 60
        let system = LinuxSystem()
        let iommufd = try IOMMUFD(system: system)
        let seam = IOCTLSeam(system)
        let fd = iommufd.fileDescriptor.rawValue
        let source = try iommufd.allocateIOAS()
        let target = try iommufd.allocateIOAS()
        let sourceDevice = try source.selftestAttachMockDomain()
        let targetDevice = try target.selftestAttachMockDomain()
        let page: UInt64 = 4096
        let bases = (0..<4).map { _ in UInt64(UInt(bitPattern: Hardware.pinnableBuffer(byteCount: 16 * 4096).baseAddress)) }
        let unexpected = Outcomes(), calls = Outcomes()
        let deadline = Date().addingTimeInterval(seconds)
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            var random = SplitMix64(state: 0x1ed0_0000 + UInt64(worker))
            let window = IOMMU_TEST_MOCK_APERTURE_START + UInt64(worker) << 24  // 16 MiB of IOVA each
            let base = bases[worker]
            var mapped: [(iova: UInt64, length: UInt64)] = []
            var copied: [(iova: UInt64, length: UInt64)] = []
            @discardableResult
            func check(_ label: String, _ body: () throws(IOMMUError) -> Void) -> Bool {
                let outcome = Self.name(body)
                calls.record(label)
                if outcome != "ok" { unexpected.record("\(label): \(outcome)") }
                return outcome == "ok"
            }
            // Slots of 64 pages in the worker's window: 0-31 for maps, 40-55 for copies.
            func freeSlot(_ range: Range<UInt64>, besides taken: [(iova: UInt64, length: UInt64)]) -> UInt64? {
                range.map { window + $0 * 64 * page }.first { iova in !taken.contains { $0.iova == iova } }
            }
            while Date() < deadline {
                switch random.below(6) {
                case 0, 1:  // map a free slot with 1-16 pages
                    let pages = 1 + random.below(16)
                    guard let iova = freeSlot(0..<32, besides: mapped) else { continue }
                    let ok = check("map") { () throws(IOMMUError) in
                        _ = try IOMMUFDIOCTL.ioasMap(seam, fd, ioas: source.id.rawValue,
                                                     flags: IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_FIXED_IOVA,
                                                     userAddress: base, length: pages * page, iova: iova, fileID: #fileID, line: #line)
                    }
                    if ok { mapped.append((iova, pages * page)) }
                case 2:  // unmap one
                    guard !mapped.isEmpty else { continue }
                    let victim = mapped.remove(at: Int(random.below(UInt64(mapped.count))))
                    check("unmap") { () throws(IOMMUError) in
                        _ = try IOMMUFDIOCTL.ioasUnmap(seam, fd, ioas: source.id.rawValue, iova: victim.iova, length: victim.length, fileID: #fileID, line: #line)
                    }
                case 3:  // copy one into the other IOAS, and later drop it
                    guard let original = mapped.randomElement(using: &random) else { continue }
                    guard let iova = freeSlot(40..<56, besides: copied) else {
                        let victim = copied.removeFirst()
                        check("unmap copy") { () throws(IOMMUError) in
                            _ = try IOMMUFDIOCTL.ioasUnmap(seam, fd, ioas: target.id.rawValue, iova: victim.iova, length: victim.length, fileID: #fileID, line: #line)
                        }
                        continue
                    }
                    let ok = check("copy") { () throws(IOMMUError) in
                        _ = try IOMMUFDIOCTL.ioasCopy(seam, fd, destination: target.id.rawValue, source: source.id.rawValue,
                                                      flags: IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_FIXED_IOVA, length: original.length,
                                                      destinationIOVA: iova, sourceIOVA: original.iova, fileID: #fileID, line: #line)
                    }
                    if ok { copied.append((iova, original.length)) }
                case 4:  // a short-lived IOAS with a mapping, destroyed
                    check("allocate, map and destroy") { () throws(IOMMUError) in
                        let scratch = try IOMMUFDIOCTL.ioasAlloc(seam, fd, fileID: #fileID, line: #line)
                        _ = try IOMMUFDIOCTL.ioasMap(seam, fd, ioas: scratch, flags: IOMMU_IOAS_MAP_READABLE, userAddress: base, length: page,
                                                     iova: 0, fileID: #fileID, line: #line)
                        try IOMMUFDIOCTL.destroy(seam, fd, id: scratch, fileID: #fileID, line: #line)
                    }
                default:  // the ranges, while the others change the IOAS
                    let entries = UnsafeMutableBufferPointer<iommu_iova_range>.allocate(capacity: 8)
                    defer { entries.deallocate() }
                    check("ranges") { () throws(IOMMUError) in
                        _ = try IOMMUFDIOCTL.ioasIOVARanges(seam, fd, ioas: source.id.rawValue, into: entries, fileID: #fileID, line: #line)
                    }
                }
            }
            for slot in copied {
                check("unmap copy") { () throws(IOMMUError) in
                    _ = try IOMMUFDIOCTL.ioasUnmap(seam, fd, ioas: target.id.rawValue, iova: slot.iova, length: slot.length, fileID: #fileID, line: #line)
                }
            }
            for slot in mapped {
                check("unmap") { () throws(IOMMUError) in
                    _ = try IOMMUFDIOCTL.ioasUnmap(seam, fd, ioas: source.id.rawValue, iova: slot.iova, length: slot.length, fileID: #fileID, line: #line)
                }
            }
        }
        print("soak (\(seconds) s): calls \(calls.snapshot)")
        #expect(unexpected.snapshot.isEmpty, "unexpected errnos: \(unexpected.snapshot)")
        #expect(calls.snapshot.values.reduce(0, +) > 100, "the soak made too few calls to mean anything: \(calls.snapshot)")
        try iommufd.destroy(sourceDevice.selftestID)
        try iommufd.destroy(targetDevice.selftestID)
    }
}

extension HardwareSuite.RaceTests.SplitMix64: RandomNumberGenerator {}

extension HardwareSuite.RaceTests {
    @Test("replacing edu's page table (IOAS A, then B, then A...) while another thread maps and unmaps on both: every call succeeds, and edu ends attached to the last one")
    func replaceRacesMap() throws {
        let address = try #require(Hardware.eduDevice)
        let system = LinuxSystem()
        let iommufd = try IOMMUFD(system: system)
        let seam = IOCTLSeam(system)
        let fd = iommufd.fileDescriptor.rawValue
        let first = try iommufd.allocateIOAS(), second = try iommufd.allocateIOAS()
        let device = try system.open(try VFIODevice.cdevPath(of: address, system: system), flags: O_RDWR, mode: 0)
        defer { try? system.close(device) }
        _ = try VFIODeviceIOCTL.bind(seam, device, iommufd: fd, token: 0, fileID: #fileID, line: #line)
        _ = try VFIODeviceIOCTL.attach(seam, device, pageTable: first.id.rawValue, fileID: #fileID, line: #line)
        let base = UInt64(UInt(bitPattern: Hardware.pinnableBuffer(byteCount: 16 * 4096).baseAddress))
        let unexpected = Outcomes(), calls = Outcomes()
        let replaces = 200
        let ioasIDs = [first.id.rawValue, second.id.rawValue]
        DispatchQueue.concurrentPerform(iterations: 2) { worker in
            func check(_ label: String, _ body: () throws(IOMMUError) -> Void) {
                let outcome = Self.name(body)
                calls.record(label)
                if outcome != "ok" { unexpected.record("\(label): \(outcome)") }
            }
            if worker == 0 {
                for round in 0..<replaces {
                    check("replace") { () throws(IOMMUError) in
                        _ = try VFIODeviceIOCTL.attach(seam, device, pageTable: ioasIDs[(round + 1) % 2], fileID: #fileID, line: #line)
                    }
                }
            } else {
                var round = 0
                while calls.snapshot["replace", default: 0] < replaces {
                    let ioas = ioasIDs[round % 2]
                    round += 1
                    check("map") { () throws(IOMMUError) in
                        _ = try IOMMUFDIOCTL.ioasMap(seam, fd, ioas: ioas, flags: IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_FIXED_IOVA,
                                                     userAddress: base, length: 16 * 4096, iova: 0x10_0000, fileID: #fileID, line: #line)
                    }
                    check("unmap") { () throws(IOMMUError) in
                        _ = try IOMMUFDIOCTL.ioasUnmap(seam, fd, ioas: ioas, iova: 0x10_0000, length: 16 * 4096, fileID: #fileID, line: #line)
                    }
                }
            }
        }
        print("replace race: \(calls.snapshot)")
        #expect(unexpected.snapshot.isEmpty, "unexpected errnos: \(unexpected.snapshot)")
        #expect(calls.snapshot["map", default: 0] > 10, "the maps did not overlap the replaces: \(calls.snapshot)")
        // After an even number of replaces edu is on the first IOAS again: it is busy, the second is not.
        #expect(Self.name { () throws(IOMMUError) in try second.destroy() } == "ok")
        #expect(Self.name { () throws(IOMMUError) in try first.destroy() } == "EBUSY")
        try VFIODeviceIOCTL.detach(seam, device, fileID: #fileID, line: #line)
    }
}
