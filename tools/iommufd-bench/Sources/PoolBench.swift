import ArgumentParser
import CBenchBaseline
import DMAMemory
import Foundation
import IOMMUFD
import MockKernel
import VFIO

/// `iommufd-bench pool`: DMABufferPool get/put against DPDK's rte_mempool, in the same
/// loops, in the same run; then heap allocations and retain/release calls per operation.
///
/// The pool's region is made through MockKernel (get and put never enter the kernel, so
/// the model costs nothing here). The DPDK side is a small C program built from
/// `tools/iommufd-bench/dpdk/mempool_baseline.c` against Debian's libdpdk and run with
/// `--no-huge --no-pci`. Both sides run on the same CPU, one round each in turn, so a
/// change in the machine's state (a busy neighbour, a clock change) lands on both; the
/// ratio reported is the median of the rounds' ratios.
struct PoolBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pool", abstract: "DMA buffer pool vs DPDK rte_mempool; allocations and ARC per operation.")

    @Option(help: "get+put pairs per single round (bulk rounds do iterations/32 bulk pairs, no-cache single rounds iterations/4).") var iterations = 4_000_000
    @Option(help: "Measured rounds per side (each side's rounds alternate with the other's).") var rounds = 21
    @Option(help: "Cache size (DPDK cache_size; our cache moves this many buffers at a time).") var cacheSize = 256

    static let count = 8191
    static let bufferSize = 2048

    /// Ours, then the DPDK case it is measured against, and whether the issue sets a target
    /// for it. DPDK's bulk calls move object pointers, so our address form is its like; the
    /// DMABuffer form (24 bytes a buffer: address, IOVA, length) is shown against the same figure.
    static let cases: [(ours: String, theirs: String, target: Bool)] = [
        ("single_cache", "single_cache", true),
        ("bulk32_cache", "bulk32_cache", true),
        ("bulk32_cache_buffers", "bulk32_cache", false),
        ("single_nocache", "single_nocache", false),
        ("bulk32_nocache", "bulk32_nocache", false),
        ("bulk32_nocache_buffers", "bulk32_nocache", false),
    ]

    func run() throws {
        let kernel = MockKernel()
        let iommufd = try IOMMUFD(system: kernel)
        let ioas = try iommufd.allocateIOAS()
        let manager = try DMAMemoryManager(addressSpace: .iommufd(ioas))
        let pool = try DMABufferPool(manager: manager, bufferSize: Self.bufferSize, count: Self.count, backing: .exactly(.memfd))
        let cpu = ciommufd_bench_pin_to_current_cpu()

        print("pool: \(Self.count) buffers of \(Self.bufferSize) bytes, cache \(cacheSize); \(rounds) rounds per side, alternating, on CPU \(cpu); ns per get+put of one buffer (median over rounds)")
        let dpdk: DPDKBaseline?
        do {
            dpdk = try DPDKBaseline(iterations: iterations, cacheSize: cacheSize, cpu: max(cpu, 0))
        } catch {
            print("DPDK: \(error)")
            dpdk = nil
        }
        var ours: [String: [Double]] = [:]
        var theirs: [String: [Double]] = [:]
        var cache = pool.makeCache(size: cacheSize)
        let buffers = UnsafeMutableBufferPointer<DMABuffer>.allocate(capacity: 32)
        let addresses = UnsafeMutableBufferPointer<DMABufferAddress>.allocate(capacity: 32)
        defer { buffers.deallocate(); addresses.deallocate() }
        for round in -1..<rounds {  // round -1 warms both up
            // Alternate who goes first, so that neither always runs just after the other.
            let dpdkFirst = round % 2 != 0
            var dpdkRound: [String: Double] = [:]
            if dpdkFirst, let dpdk { dpdkRound = try dpdk.round() }
            let ourRound = measureRound(pool, &cache, buffers, addresses)
            if !dpdkFirst, let dpdk { dpdkRound = try dpdk.round() }
            guard round >= 0 else { continue }
            for (name, value) in ourRound { ours[name, default: []].append(value) }
            for (name, value) in dpdkRound { theirs[name, default: []].append(value) }
        }
        dpdk?.finish()

        for (name, baseline, target) in Self.cases {
            let oursMedian = median(ours[name]!)
            let label = name.padding(toLength: 22, withPad: " ", startingAt: 0)
            guard let theirRounds = theirs[baseline], theirRounds.count == ours[name]!.count else {
                print(String(format: "%@ DMABufferPool %7.3f ns   rte_mempool unavailable", label, oursMedian))
                continue
            }
            let ratios = zip(theirRounds, ours[name]!).map { $0 / $1 }.sorted()
            let ratio = median(ratios)
            let verdict = target ? (ratio >= 1.0 ? "  (target >= 1.0x: met)" : "  (target >= 1.0x: NOT met)") : ""
            print(String(format: "%@ DMABufferPool %7.3f ns   rte_mempool %7.3f ns   rate ratio %.2fx (rounds %.2f-%.2f)%@",
                         label, oursMedian, median(theirRounds), ratio, ratios.first!, ratios.last!, verdict))
        }
        print("bulk32: DMABufferAddress arrays (8 bytes a buffer, IOVA by DMABufferTranslation); *_buffers: DMABuffer arrays (24 bytes)")
        if let dpdk { print("DPDK: rte_mempool ops \(dpdk.ops), EAL --no-huge --no-pci -l \(max(cpu, 0)), cache_size \(cacheSize), cc -O3 -march=native") }
        countAllocationsAndARC(pool)
    }

    /// One round of every case on our side.
    func measureRound(_ pool: DMABufferPool, _ cache: inout DMABufferCache, _ buffers: UnsafeMutableBufferPointer<DMABuffer>,
                      _ addresses: UnsafeMutableBufferPointer<DMABufferAddress>) -> [String: Double] {
        [
            "single_cache": Self.singleCached(&cache, iterations),
            "bulk32_cache": Self.bulkCached(&cache, addresses, iterations / 32),
            "bulk32_cache_buffers": Self.bulkCached(&cache, buffers, iterations / 32),
            "single_nocache": Self.singleShared(pool, iterations / 4),
            "bulk32_nocache": Self.bulkShared(pool, addresses, iterations / 32),
            "bulk32_nocache_buffers": Self.bulkShared(pool, buffers, iterations / 32),
        ]
    }

    /// ns per buffer over `iterations` runs of `step`, which gets and puts `buffers` buffers.
    /// Inlined into each case below, so every case is its own loop with the pool calls inlined.
    @inline(__always)
    static func time(_ iterations: Int, buffers: Int, _ step: () -> Void) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<iterations { step() }
        return Double(DispatchTime.now().uptimeNanoseconds - start) / Double(iterations * buffers)
    }

    /// The bulk cases' burst: 32 is a constant, as in the C baseline's bulk_round(..., 32),
    /// so both compilers see the burst size.
    @inline(__always)
    static func burst<Element>(_ storage: UnsafeMutableBufferPointer<Element>) -> UnsafeMutableBufferPointer<Element> {
        UnsafeMutableBufferPointer(start: storage.baseAddress!, count: 32)
    }

    @inline(never)
    static func singleCached(_ cache: inout DMABufferCache, _ iterations: Int) -> Double {
        time(iterations, buffers: 1) {
            guard let buffer = cache.get() else { fatalError("pool empty") }
            cache.put(buffer)
        }
    }

    @inline(never)
    static func bulkCached(_ cache: inout DMABufferCache, _ storage: UnsafeMutableBufferPointer<DMABuffer>, _ iterations: Int) -> Double {
        let buffers = burst(storage)
        return time(iterations, buffers: buffers.count) {
            guard cache.get(into: buffers) else { fatalError("pool empty") }
            cache.put(UnsafeBufferPointer(buffers))
        }
    }

    @inline(never)
    static func bulkCached(_ cache: inout DMABufferCache, _ storage: UnsafeMutableBufferPointer<DMABufferAddress>, _ iterations: Int) -> Double {
        let addresses = burst(storage)
        return time(iterations, buffers: addresses.count) {
            guard cache.get(into: addresses) else { fatalError("pool empty") }
            cache.put(UnsafeBufferPointer(addresses))
        }
    }

    @inline(never)
    static func singleShared(_ pool: DMABufferPool, _ iterations: Int) -> Double {
        time(iterations, buffers: 1) {
            guard let buffer = pool.get() else { fatalError("pool empty") }
            pool.put(buffer)
        }
    }

    @inline(never)
    static func bulkShared(_ pool: DMABufferPool, _ storage: UnsafeMutableBufferPointer<DMABuffer>, _ iterations: Int) -> Double {
        let buffers = burst(storage)
        return time(iterations, buffers: buffers.count) {
            guard pool.get(into: buffers) else { fatalError("pool empty") }
            pool.put(UnsafeBufferPointer(buffers))
        }
    }

    @inline(never)
    static func bulkShared(_ pool: DMABufferPool, _ storage: UnsafeMutableBufferPointer<DMABufferAddress>, _ iterations: Int) -> Double {
        let addresses = burst(storage)
        return time(iterations, buffers: addresses.count) {
            guard pool.get(into: addresses) else { fatalError("pool empty") }
            pool.put(UnsafeBufferPointer(addresses))
        }
    }

    /// Counts heap allocations and retain/release calls over 1M operations of each kind.
    func countAllocationsAndARC(_ pool: DMABufferPool) {
        ciommufd_bench_counting_install()
        var cache = pool.makeCache(size: cacheSize)
        let buffers = UnsafeMutableBufferPointer<DMABuffer>.allocate(capacity: 32)
        let addresses = UnsafeMutableBufferPointer<DMABufferAddress>.allocate(capacity: 32)
        defer { buffers.deallocate(); addresses.deallocate() }
        let operations = 1_000_000
        ciommufd_bench_counting_begin()
        _ = Self.singleCached(&cache, operations)
        _ = Self.bulkCached(&cache, buffers, operations / 32)
        _ = Self.singleShared(pool, operations)
        _ = Self.bulkShared(pool, buffers, operations / 32)
        _ = Self.bulkCached(&cache, addresses, operations / 32)
        _ = Self.bulkShared(pool, addresses, operations / 32)
        let counts = ciommufd_bench_counting_end()
        // Each loop iteration is one get call and one put call (a bulk call moves 32 buffers).
        let calls = Double(2 * (2 * operations + 4 * (operations / 32)))
        print(String(format: "per get/put call: heap allocations %.4f, retains %.4f, releases %.4f (over %.0f calls; target 0)",
                     Double(counts.allocations) / calls, Double(counts.retains) / calls, Double(counts.releases) / calls, calls))
        // The counters are live: one allocation and a retain/release of a class prove it.
        ciommufd_bench_counting_begin()
        let probe = ProbeObject()
        Self.touch(probe)
        let probeCounts = ciommufd_bench_counting_end()
        print("counter self-check (one class instance made and passed on): allocations \(probeCounts.allocations), retains \(probeCounts.retains), releases \(probeCounts.releases)")
    }

    final class ProbeObject { var value = 0 }
    nonisolated(unsafe) static var sink: [ProbeObject] = []
    @inline(never) static func touch(_ object: ProbeObject) { sink = [object, object] }
}

/// The DPDK program, built from source and kept running: each `round()` asks it for one
/// round of every case.
final class DPDKBaseline {
    enum Failure: Error, CustomStringConvertible {
        case noLibDPDK, buildFailed(String), startFailed(String)
        var description: String {
            switch self {
            case .noLibDPDK: "libdpdk not found by pkg-config: sudo apt-get install dpdk-dev"
            case .buildFailed(let source): "building \(source) failed"
            case .startFailed(let why): "the DPDK baseline did not start (\(why))"
            }
        }
    }

    let process = Process()
    let input = Pipe()
    let output = Pipe()
    let binary: String
    private(set) var ops = "?"
    private var pending = Data()

    init(iterations: Int, cacheSize: Int, cpu: Int32) throws {
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("dpdk/mempool_baseline.c").path
        guard let flags = Self.shell("pkg-config --cflags --libs libdpdk"), !flags.isEmpty else { throw Failure.noLibDPDK }
        binary = FileManager.default.temporaryDirectory.appendingPathComponent("iommufd-bench-mempool-\(LinuxSystem().processID())").path
        guard Self.shell("cc -O3 -march=native -o \(binary) \(source) \(flags) 2>&1") != nil else { throw Failure.buildFailed(source) }
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["--no-huge", "--no-pci", "-l", "\(cpu)", "-m", "128", "--log-level=1", "--file-prefix=iommufd-bench-\(LinuxSystem().processID())",
                             "--", "\(iterations)", "\(cacheSize)"]
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { throw Failure.startFailed("\(error)") }
        let greeting = try readUntilEnd()
        guard let line = greeting.first(where: { $0.hasPrefix("ops ") }) else { throw Failure.startFailed("EAL init") }
        ops = String(line.dropFirst(4))
    }

    deinit {
        try? FileManager.default.removeItem(atPath: binary)
    }

    /// One round of every case: ns per get+put of one object, by case name.
    func round() throws -> [String: Double] {
        input.fileHandleForWriting.write(Data("round\n".utf8))
        var results: [String: Double] = [:]
        for line in try readUntilEnd() {
            let fields = line.split(separator: " ")
            if fields.count == 2, let value = Double(fields[1]) { results[String(fields[0])] = value }
        }
        return results
    }

    func finish() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }

    /// Lines up to the next "end".
    private func readUntilEnd() throws -> [String] {
        var lines: [String] = []
        while true {
            if let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                if line == "end" { return lines }
                lines.append(line)
                continue
            }
            let more = output.fileHandleForReading.availableData
            if more.isEmpty { throw Failure.startFailed("it exited early") }
            pending.append(more)
        }
    }

    /// Runs a shell command; its standard output, or `nil` when it fails.
    static func shell(_ command: String) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        let pipe = Pipe()
        process.standardOutput = pipe
        do { try process.run() } catch { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
