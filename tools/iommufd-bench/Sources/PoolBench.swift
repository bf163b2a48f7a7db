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
/// `--no-huge --no-pci`.
struct PoolBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pool", abstract: "DMA buffer pool vs DPDK rte_mempool; allocations and ARC per operation.")

    @Option(help: "get+put pairs per measured round (bulk rounds do iterations/32 bulk pairs).") var iterations = 10_000_000
    @Option(help: "Measured rounds per case (the median is reported).") var rounds = 5
    @Option(help: "Cache size (DPDK cache_size; our cache moves this many buffers at a time).") var cacheSize = 256

    static let count = 8191
    static let bufferSize = 2048

    func run() throws {
        let kernel = MockKernel()
        let iommufd = try IOMMUFD(system: kernel)
        let ioas = try iommufd.allocateIOAS()
        let manager = try DMAMemoryManager(addressSpace: .iommufd(ioas), system: kernel)
        let pool = try DMABufferPool(manager: manager, bufferSize: Self.bufferSize, count: Self.count, backing: .exactly(.memfd))

        print("pool: \(Self.count) buffers of \(Self.bufferSize) bytes, cache \(cacheSize); median of \(rounds) rounds, ns per get+put of one buffer")
        let swift = measureSwift(pool)
        let dpdk = try DPDKBaseline.run(iterations: iterations, rounds: rounds, cacheSize: cacheSize)

        let cases = ["single_cache", "bulk32_cache", "single_nocache", "bulk32_nocache"]
        for name in cases {
            let ours = swift[name]!
            if let theirs = dpdk.results[name] {
                print(String(format: "%-15@ DMABufferPool %7.3f ns   rte_mempool %7.3f ns   rate ratio %.2fx%@",
                             name as NSString, ours, theirs, theirs / ours,
                             (name.hasSuffix("_cache") ? (theirs / ours >= 1.0 ? "  (target >= 1.0x: met)" : "  (target >= 1.0x: NOT met)") : "") as NSString))
            } else {
                print(String(format: "%-15@ DMABufferPool %7.3f ns   rte_mempool unavailable", name as NSString, ours))
            }
        }
        if let note = dpdk.note { print("DPDK: \(note)") }
        countAllocationsAndARC(pool)
    }

    func measureSwift(_ pool: DMABufferPool) -> [String: Double] {
        var cache = pool.makeCache(size: cacheSize)
        var buffers = [DMABuffer](repeating: pool.get()!, count: 32)
        pool.put(buffers[0])
        var results: [String: [Double]] = [:]
        for round in -1..<rounds {  // round -1 warms up
            let values: [(String, Double)] = buffers.withUnsafeMutableBufferPointer { buffers in
                [("single_cache", Self.singleCached(&cache, iterations)),
                 ("bulk32_cache", Self.bulkCached(&cache, buffers, iterations / 32)),
                 ("single_nocache", Self.singleShared(pool, iterations / 4)),
                 ("bulk32_nocache", Self.bulkShared(pool, buffers, iterations / 32))]
            }
            if round >= 0 { for (name, value) in values { results[name, default: []].append(value) } }
        }
        return results.mapValues { $0.sorted()[$0.count / 2] }
    }

    @inline(never)
    static func singleCached(_ cache: inout DMABufferCache, _ iterations: Int) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<iterations {
            guard let buffer = cache.get() else { fatalError("pool empty") }
            cache.put(buffer)
        }
        return Double(DispatchTime.now().uptimeNanoseconds - start) / Double(iterations)
    }

    @inline(never)
    static func bulkCached(_ cache: inout DMABufferCache, _ buffers: UnsafeMutableBufferPointer<DMABuffer>, _ iterations: Int) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<iterations {
            guard cache.get(into: buffers) else { fatalError("pool empty") }
            cache.put(UnsafeBufferPointer(buffers))
        }
        return Double(DispatchTime.now().uptimeNanoseconds - start) / Double(iterations * buffers.count)
    }

    @inline(never)
    static func singleShared(_ pool: DMABufferPool, _ iterations: Int) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<iterations {
            guard let buffer = pool.get() else { fatalError("pool empty") }
            pool.put(buffer)
        }
        return Double(DispatchTime.now().uptimeNanoseconds - start) / Double(iterations)
    }

    @inline(never)
    static func bulkShared(_ pool: DMABufferPool, _ buffers: UnsafeMutableBufferPointer<DMABuffer>, _ iterations: Int) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<iterations {
            guard pool.get(into: buffers) else { fatalError("pool empty") }
            pool.put(UnsafeBufferPointer(buffers))
        }
        return Double(DispatchTime.now().uptimeNanoseconds - start) / Double(iterations * buffers.count)
    }

    /// Counts heap allocations and retain/release calls over 1M operations of each kind.
    func countAllocationsAndARC(_ pool: DMABufferPool) {
        ciommufd_bench_counting_install()
        var cache = pool.makeCache(size: cacheSize)
        let buffers = UnsafeMutableBufferPointer<DMABuffer>.allocate(capacity: 32)
        defer { buffers.deallocate() }
        let operations = 1_000_000
        ciommufd_bench_counting_begin()
        _ = Self.singleCached(&cache, operations)
        _ = Self.bulkCached(&cache, buffers, operations / 32)
        _ = Self.singleShared(pool, operations)
        _ = Self.bulkShared(pool, buffers, operations / 32)
        let counts = ciommufd_bench_counting_end()
        // Each loop iteration is one get call and one put call (a bulk call moves 32 buffers).
        let calls = Double(2 * (operations + operations / 32 + operations + operations / 32))
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

/// Builds and runs the DPDK program.
enum DPDKBaseline {
    struct Results {
        var results: [String: Double] = [:]
        var note: String?
    }

    static func run(iterations: Int, rounds: Int, cacheSize: Int) throws -> Results {
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("dpdk/mempool_baseline.c").path
        guard let flags = shell("pkg-config --cflags --libs libdpdk"), !flags.isEmpty else {
            return Results(note: "libdpdk not found by pkg-config: sudo apt-get install dpdk-dev")
        }
        let binary = FileManager.default.temporaryDirectory.appendingPathComponent("iommufd-bench-mempool-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: binary) }
        guard shell("cc -O3 -march=native -o \(binary) \(source) \(flags) 2>&1") != nil else {
            return Results(note: "building \(source) failed")
        }
        guard let output = shell("\(binary) --no-huge --no-pci -l 0 -m 128 --log-level=1 --file-prefix=iommufd-bench-\(getpid()) -- \(iterations) \(rounds) \(cacheSize) 2>/dev/null") else {
            return Results(note: "running the DPDK baseline failed (EAL init)")
        }
        var results = Results()
        for line in output.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count == 2, let value = Double(fields[1]) { results.results[String(fields[0])] = value }
            if fields.first == "ops" { results.note = "rte_mempool ops \(fields.dropFirst().joined()), EAL --no-huge --no-pci, cache_size \(cacheSize)" }
        }
        return results
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
