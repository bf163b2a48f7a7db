import ArgumentParser
import CBenchBaseline
import DMAMemory
import Foundation
import IOMMUFD

/// `iommufd-bench iova`: IOVAAllocator against a C implementation of the same algorithm
/// (`CBenchBaseline/iova_reference.c`), on the same sequence of operations: 64 live
/// regions of mixed sizes (4 KiB, 12 KiB, 64 KiB, 2 MiB); each step frees the oldest into
/// quarantine and allocates a new one; every 16 frees the devices are declared quiescent.
struct IOVAAllocatorBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "iova", abstract: "IOVA allocator vs a C reference of the same algorithm.")

    @Option(help: "Steps (one free + one allocate) per measured round.") var iterations = 2_000_000
    @Option(help: "Measured rounds per side (the median is reported).") var rounds = 7

    /// intel-iommu's windows: everything below 2^39 but the MSI window.
    static let windows = [(UInt64(0), UInt64(0xfedf_ffff)), (UInt64(0xfef0_0000), UInt64((1 << 39) - 1))]
    static let live = 64

    func run() throws {
        var random: UInt64 = 0x2545_f491_4f6c_dd1d
        let choices: [UInt64] = [4096, 12288, 65536, 2 << 20]
        let sizes = (0..<iterations).map { _ -> UInt64 in
            random = random &* 6364136223846793005 &+ 1442695040888963407
            return choices[Int(random >> 62)]
        }
        _ = try swiftRound(sizes); _ = cRound(sizes)  // warm up
        var swift: [Double] = []
        var c: [Double] = []
        for _ in 0..<rounds {
            swift.append(try swiftRound(sizes))
            c.append(cRound(sizes))
        }
        let swiftMedian = median(swift)
        let cMedian = median(c)
        print(String(format: "C reference:   %.1f ns per free+allocate (median of %d x %d)", cMedian, rounds, iterations))
        print(String(format: "IOVAAllocator: %.1f ns per free+allocate", swiftMedian))
        print(String(format: "ratio Swift/C: %.3fx (target <= 1.0x: %@)", swiftMedian / cMedian, (swiftMedian <= cMedian ? "met" : "NOT met") as NSString))
    }

    func swiftRound(_ sizes: [UInt64]) throws -> Double {
        let ranges = IOVARanges(ranges: Self.windows.map { IOVARange(start: IOVA($0.0), last: IOVA($0.1)) }, alignment: 4096)
        var allocator = IOVAAllocator(ranges: ranges)
        var ring = try (0..<Self.live).map { _ in try allocator.allocate(4096) }
        let start = DispatchTime.now().uptimeNanoseconds
        try Self.swiftSteps(&allocator, &ring, sizes)
        return Double(DispatchTime.now().uptimeNanoseconds - start) / Double(sizes.count)
    }

    @inline(never)
    static func swiftSteps(_ allocator: inout IOVAAllocator, _ ring: inout [IOVARange], _ sizes: [UInt64]) throws {
        for (step, size) in sizes.enumerated() {
            let slot = step & (live - 1)
            try allocator.free(ring[slot])
            if step & 15 == 15 { allocator.releaseQuarantine() }
            ring[slot] = try allocator.allocate(size)
        }
    }

    func cRound(_ sizes: [UInt64]) -> Double {
        let starts = Self.windows.map(\.0)
        let lasts = Self.windows.map(\.1)
        let allocator = ciommufd_iova_reference_create(starts, lasts, starts.count, 4096)!
        defer { ciommufd_iova_reference_destroy(allocator) }
        var ring = (0..<Self.live).map { _ in (ciommufd_iova_reference_allocate(allocator, 4096), UInt64(4096)) }
        let start = DispatchTime.now().uptimeNanoseconds
        Self.cSteps(allocator, &ring, sizes)
        return Double(DispatchTime.now().uptimeNanoseconds - start) / Double(sizes.count)
    }

    @inline(never)
    static func cSteps(_ allocator: OpaquePointer, _ ring: inout [(UInt64, UInt64)], _ sizes: [UInt64]) {
        for (step, size) in sizes.enumerated() {
            let slot = step & (live - 1)
            precondition(ciommufd_iova_reference_free(allocator, ring[slot].0, ring[slot].1) == 0)
            if step & 15 == 15 { ciommufd_iova_reference_release_quarantine(allocator) }
            let start = ciommufd_iova_reference_allocate(allocator, size)
            precondition(start != 0)
            ring[slot] = (start, (size + 4095) & ~4095)
        }
    }
}
