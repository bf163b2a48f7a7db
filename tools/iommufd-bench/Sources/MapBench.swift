import ArgumentParser
import CBenchBaseline
import DMAMemory
import Foundation
@_spi(Selftest) import IOMMUFD
import SystemPackage

/// `iommufd-bench map`: IOAS map + unmap with a selftest mock domain attached, so that every
/// map pins the pages and fills the domain's page table and every unmap clears and unpins
/// them, for 4 KiB pages (anonymous by `IOMMU_IOAS_MAP`, a shmem memfd by
/// `IOMMU_IOAS_MAP_FILE`) and 2 MiB and 1 GiB hugetlb memfds (by both). Each workload runs
/// the typed API against C loops issuing the same ioctls, in the same run, rounds
/// interleaved in alternating order; it reports the ratio of the medians (target at most
/// 1.02x) and bytes per second, then how much faster per byte the hugepages map than 4 KiB
/// pages (target at least 10x).
///
/// Needs `/dev/iommu` on a kernel with `CONFIG_IOMMUFD_TEST` (the VM lane's). A hugepage size
/// the machine lacks is reported as skipped and fails the run at the end, unless `--allow-missing`.
struct MapBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "map",
        abstract: "IOAS map + unmap with a selftest mock domain: typed API vs C, 4 KiB pages vs 2 MiB and 1 GiB hugetlb, MAP and MAP_FILE.")

    @Option(help: "Measured rounds per side (the median is reported).") var rounds = 9
    @Option(help: "Map + unmap pairs per round, for every case (default: as many as fill --round-ms, found per case).")
    var iterations: Int?
    @Option(name: .customLong("round-ms"), help: "The length of a round when --iterations is not given, in milliseconds.")
    var roundMilliseconds = 150.0
    @Option(name: .customLong("base-mib"), help: "The region of the 4 KiB page cases, in MiB.") var baseMiB = 16
    @Option(name: .customLong("huge-2m-mib"), help: "The region of the 2 MiB hugetlb case, in MiB (even).") var huge2MiBMiB = 64
    @Option(help: "Typed rounds that time map and unmap apart, after the measured rounds (0: none).") var splitRounds = 3
    @Flag(help: "Skip a hugepage size the machine lacks without failing the run.") var allowMissing = false

    /// Where every case maps: 1 GiB, aligned for the largest page, and inside the selftest
    /// mock domain's aperture [2^24, 2^31), which holds exactly 1 GiB from here.
    static let iova = IOVA(1 << 30)
    /// The largest region that fits the aperture from ``iova``, in MiB.
    static let largestRegionMiB = 1024
    /// The target for the per-byte speedup of hugepages over 4 KiB pages, from the issue.
    static let speedupTarget = 10.0

    /// One kind of memory and the ways it is mapped.
    struct Case {
        /// The memory.
        var backing: MapBenchBacking
        /// Its length in bytes.
        var length: Int
        /// By address (`IOMMU_IOAS_MAP`), by file (`IOMMU_IOAS_MAP_FILE`), or both.
        var paths: [MapPath]
    }

    /// How a case's memory reaches the IOAS.
    enum MapPath {
        /// By its address: `IOMMU_IOAS_MAP`.
        case address
        /// By its memfd: `IOMMU_IOAS_MAP_FILE`.
        case file
    }

    /// One workload's result, by the case and path it measured.
    struct Result {
        /// The memory.
        var backing: MapBenchBacking
        /// How it was mapped.
        var path: MapPath
        /// What was measured.
        var measurement: MapMeasurement
    }

    /// The cases, in the order they run.
    var cases: [Case] {
        [
            Case(backing: .anonymous, length: baseMiB << 20, paths: [.address]),
            Case(backing: .memfd, length: baseMiB << 20, paths: [.file]),
            Case(backing: .hugetlb(.huge2MiB), length: huge2MiBMiB << 20, paths: [.address, .file]),
            Case(backing: .hugetlb(.huge1GiB), length: 1 << 30, paths: [.address, .file]),
        ]
    }

    func validate() throws {
        guard rounds > 0 else { throw ValidationError("--rounds must be at least 1") }
        guard splitRounds >= 0 else { throw ValidationError("--split-rounds must not be negative") }
        if let iterations, iterations <= 0 { throw ValidationError("--iterations must be at least 1") }
        guard roundMilliseconds > 0 else { throw ValidationError("--round-ms must be positive") }
        guard (1...Self.largestRegionMiB).contains(baseMiB) else { throw ValidationError("--base-mib must be 1-\(Self.largestRegionMiB) (the mock domain's aperture)") }
        guard (1...Self.largestRegionMiB).contains(huge2MiBMiB), huge2MiBMiB % 2 == 0 else {
            throw ValidationError("--huge-2m-mib must be even and 2-\(Self.largestRegionMiB) (the mock domain's aperture)")
        }
    }

    func run() throws {
        let system = LinuxSystem()
        _ = try Self.makeIOAS(system: system)  // fails at once, and clearly, where there is no iommufd or no selftest
        // One CPU for the whole run: a move to another CPU mid-round would land on one side only.
        let cpu = ciommufd_bench_pin_to_current_cpu()
        let pinning = cpu >= 0 ? "pinned to CPU \(cpu)" : "not pinned to a CPU (sched_setaffinity: \(Errno(rawValue: errno)))"
        print("map: IOAS map + unmap at IOVA \(Self.iova) with a selftest mock domain attached (each map pins the pages and fills")
        print("     the domain, each unmap clears and unpins them); the typed API against the same two ioctls from C;")
        print("     rounds interleaved in alternating order, \(pinning); time per map + unmap, and bytes mapped per second at that pace")
        var results: [Result] = []
        var skipped: [String] = []
        for item in cases {
            let memory: MapBenchMemory
            do {
                memory = try MapBenchMemory(item.backing, length: item.length, system: system)
            } catch {
                // (Not `catch where`: with the typed error and the noncopyable memory, Swift 6.3.1's SILGen crashes on it.)
                guard error.isMissingBackingResource else { throw error }
                print("\(item.backing): skipped: \(error)")
                skipped.append("\(item.backing)")
                continue
            }
            results += try measure(item, memory, system: system)
        }
        printSpeedups(results)
        let missed = results.filter { !$0.measurement.meetsTarget }.map { "\($0.backing) \($0.measurement.ioctl)" }
        print(missed.isEmpty ? String(format: "typed/C (libc) <= %.2fx in every case: met", MapMeasurement.ratioTarget)
                             : String(format: "typed/C (libc) <= %.2fx: NOT met for ", MapMeasurement.ratioTarget) + missed.joined(separator: ", "))
        if !skipped.isEmpty {
            guard allowMissing else {
                print("map: FAILED: skipped \(skipped.joined(separator: ", ")) (the run needs every page size; --allow-missing accepts this)")
                throw ExitCode.failure
            }
            print("map: skipped \(skipped.joined(separator: ", ")) (--allow-missing)")
        }
    }

    /// Every path of one case, on a fresh iommufd with a mock domain attached; the iommufd
    /// and its objects are gone on return, before `memory` is.
    func measure(_ item: Case, _ memory: borrowing MapBenchMemory, system: any SystemInterface) throws -> [Result] {
        let ioas = try Self.makeIOAS(system: system)
        let size: MapUnmapWorkload.RoundSize = iterations.map { .pairs($0) } ?? .filling(nanoseconds: roundMilliseconds * 1e6)
        var results: [Result] = []
        for path in item.paths {
            let source: MapSource
            switch path {
            case .address: source = .address(memory.userAddress)
            case .file:
                guard let file = memory.file else { preconditionFailure("\(item.backing) has no file to map") }
                source = .file(file)
            }
            let workload = MapUnmapWorkload(ioas: ioas, source: source, length: UInt64(memory.length), iova: Self.iova)
            let measurement = try workload.measure(rounds: rounds, size: size, splitRounds: splitRounds)
            for line in measurement.report("\(item.backing)") { print(line) }
            results.append(Result(backing: item.backing, path: path, measurement: measurement))
        }
        return results
    }

    /// The per-byte speedup of each hugepage size over 4 KiB pages mapped the same way
    /// (anonymous memory by address, the shmem memfd by file), from the typed API's rates:
    /// map + unmap (the target), and map alone from the split rounds (unmap reads the domain
    /// back one 4 KiB page at a time, whatever the page size).
    func printSpeedups(_ results: [Result]) {
        print(String(format: "per-byte speedup of hugetlb over 4 KiB pages (typed; target >= %.0fx for map + unmap):", Self.speedupTarget))
        for (path, base) in [(MapPath.address, MapBenchBacking.anonymous), (.file, .memfd)] {
            let ioctl = path == .address ? "IOMMU_IOAS_MAP" : "IOMMU_IOAS_MAP_FILE"
            guard let baseline = results.first(where: { $0.backing == base && $0.path == path })?.measurement else {
                print("    \(ioctl): no \(base) result")
                continue
            }
            var pairs: [String] = []
            var mapsAlone: [String] = []
            for size in [PageSize.huge2MiB, .huge1GiB] {
                guard let huge = results.first(where: { $0.backing == .hugetlb(size) && $0.path == path })?.measurement else {
                    pairs.append("\(size) skipped")
                    continue
                }
                let speedup = huge.typedBytesPerSecond / baseline.typedBytesPerSecond
                pairs.append(String(format: "%@ %.1fx (%@)", "\(size)", speedup, speedup >= Self.speedupTarget ? "met" : "NOT met"))
                if let hugeMap = huge.mapBytesPerSecond, let baseMap = baseline.mapBytesPerSecond {
                    mapsAlone.append(String(format: "%@ %.1fx", "\(size)", hugeMap / baseMap))
                }
            }
            print("    \(ioctl.padding(toLength: 20, withPad: " ", startingAt: 0)) map + unmap: \(pairs.joined(separator: ", "))"
                  + (mapsAlone.isEmpty ? "" : "; map alone: \(mapsAlone.joined(separator: ", "))") + " (against \(base))")
        }
    }

    /// A fresh iommufd with one IOAS and a selftest mock device attached to it (the IOAS
    /// keeps the iommufd open; releasing it closes the iommufd, which destroys the rest).
    ///
    /// - Throws: ``MapBenchSetupFailure`` saying what the machine lacks.
    static func makeIOAS(system: any SystemInterface) throws(MapBenchSetupFailure) -> IOAS {
        let ioas: IOAS
        do {
            ioas = try IOMMUFD(system: system).allocateIOAS()
        } catch {
            throw MapBenchSetupFailure(what: "no iommufd to map into", error: error)
        }
        do {
            _ = try ioas.selftestAttachMockDomain()
        } catch {
            throw MapBenchSetupFailure(what: "the kernel's selftest mock domain (CONFIG_IOMMUFD_TEST) could not be attached", error: error)
        }
        return ioas
    }
}

/// The machine cannot run the map bench at all.
struct MapBenchSetupFailure: Error, CustomStringConvertible {
    /// What is missing.
    var what: String
    /// The kernel's answer.
    var error: IOMMUError

    var description: String {
        "map: \(what): \(error)\nThe map bench needs /dev/iommu on a kernel built with CONFIG_IOMMUFD_TEST, run as root: "
            + "the VM lane's (hw-tests/vm/run -- .build-portable/release/iommufd-bench map)"
    }
}
