import CBenchBaseline
import Foundation
import IOMMUFD
import SystemPackage

/// What one map + unmap maps.
enum MapSource {
    /// Memory by its address: `IOMMU_IOAS_MAP` (`IOAS.map(userAddress:length:at:)`).
    case address(UInt64)
    /// A memfd by descriptor, from offset 0: `IOMMU_IOAS_MAP_FILE` (`IOAS.mapFile`).
    case file(FileDescriptor)

    /// The map ioctl, for the report.
    var ioctl: String {
        switch self {
        case .address: "IOMMU_IOAS_MAP"
        case .file: "IOMMU_IOAS_MAP_FILE"
        }
    }
}

/// How the C baseline issues its ioctls (`CBenchBaseline/baseline.c`).
enum CBaseline {
    /// Through libc's `ioctl(3)`, reading `errno` on failure: what a C library does; the target is set against it.
    case libc
    /// With the shim's `ciommufd_ioctl`, the instruction sequence the Swift side uses.
    case inPlace
}

/// A C map + unmap loop failed: the kernel refused a call the typed side made fine, or
/// unmapped another length than was mapped.
struct MapLoopFailure: Error, CustomStringConvertible {
    /// The loop's flavour.
    var baseline: CBaseline
    /// The map ioctl the loop issued.
    var ioctl: String
    /// How many of the loop's map or unmap calls failed.
    var failures: UInt64
    /// How many map + unmap pairs it made.
    var iterations: Int

    var description: String {
        "the C loop (\(baseline == .libc ? "libc" : "in place")) had \(failures) failed \(ioctl)/IOMMU_IOAS_UNMAP calls in \(iterations) iterations"
    }
}

/// IOAS map + unmap of one range at a fixed IOVA, repeated: the typed API (`IOAS.map` or
/// `IOAS.mapFile`, then `IOAS.unmap`, which checks the length unmapped) against C loops
/// issuing the same two ioctls with the same flags (`FIXED_IOVA | READABLE | WRITEABLE`)
/// and the same check.
struct MapUnmapWorkload {
    /// The IOAS mapped into (with a device attached, mapping pins the pages and fills the domain).
    let ioas: IOAS
    /// What is mapped.
    let source: MapSource
    /// The bytes mapped per call.
    let length: UInt64
    /// Where it is mapped.
    let iova: IOVA

    /// How many map + unmap pairs a round makes.
    enum RoundSize {
        /// This many.
        case pairs(Int)
        /// As many as fill about this many nanoseconds of a typed round, measured first.
        case filling(nanoseconds: Double)
    }

    /// Measures the three sides in interleaved rounds, in alternating order (typed, C libc,
    /// C in place, then the reverse), after one short warm-up round each; then, when
    /// `splitRounds` is above zero, that many typed rounds timing map and unmap apart.
    func measure(rounds: Int, size: RoundSize, splitRounds: Int = 0) throws -> MapMeasurement {
        precondition(rounds > 0, "at least one round")
        let count: Int
        switch size {
        case .pairs(let pairs): count = pairs
        case .filling(let nanoseconds): count = try calibrate(nanoseconds)
        }
        precondition(count > 0, "at least one map + unmap a round")
        let warmUp = max(1, count / 4)
        _ = try typedRound(warmUp)
        _ = try cRound(.libc, warmUp)
        _ = try cRound(.inPlace, warmUp)
        var typed: [Double] = []
        var cLibc: [Double] = []
        var cInPlace: [Double] = []
        for round in 0..<rounds {  // drift and order hit every side alike
            if round % 2 == 0 {
                typed.append(try typedRound(count))
                cLibc.append(try cRound(.libc, count))
                cInPlace.append(try cRound(.inPlace, count))
            } else {
                cInPlace.append(try cRound(.inPlace, count))
                cLibc.append(try cRound(.libc, count))
                typed.append(try typedRound(count))
            }
        }
        var split: [(map: Double, unmap: Double)] = []
        for _ in 0..<splitRounds { split.append(try typedSplitRound(count)) }
        return MapMeasurement(length: length, ioctl: source.ioctl, iterations: count,
                              typedRounds: typed, cLibcRounds: cLibc, cInPlaceRounds: cInPlace,
                              mapRounds: split.map(\.map), unmapRounds: split.map(\.unmap))
    }

    /// ns per map and ns per unmap over `count` typed pairs, each call timed on its own (a
    /// diagnostic: the clock reads are not in the measured rounds).
    func typedSplitRound(_ count: Int) throws(IOMMUError) -> (map: Double, unmap: Double) {
        var mapNanoseconds: UInt64 = 0
        var unmapNanoseconds: UInt64 = 0
        for _ in 0..<count {
            let start = DispatchTime.now().uptimeNanoseconds
            let mapping: IOASMapping
            switch source {
            case .address(let address): mapping = try ioas.map(userAddress: address, length: length, at: iova)
            case .file(let file): mapping = try ioas.mapFile(fileDescriptor: file, offset: 0, length: length, at: iova)
            }
            let mapped = DispatchTime.now().uptimeNanoseconds
            try ioas.unmap(mapping)
            let end = DispatchTime.now().uptimeNanoseconds
            mapNanoseconds += mapped - start
            unmapNanoseconds += end - mapped
        }
        return (Double(mapNanoseconds) / Double(count), Double(unmapNanoseconds) / Double(count))
    }

    /// The map + unmap pairs that make a typed round last about `roundNanoseconds` (at least one).
    func calibrate(_ roundNanoseconds: Double) throws(IOMMUError) -> Int {
        _ = try typedRound(1)  // the first call builds the domain's page-table levels (and, under TCG, translates the code)
        var count = 1
        var perCall = try typedRound(count)
        while perCall * Double(count) < roundNanoseconds / 8 && count < 1 << 20 {
            count *= 4
            perCall = try typedRound(count)
        }
        return max(1, Int(roundNanoseconds / perCall))
    }

    /// ns per map + unmap over `count` typed pairs.
    func typedRound(_ count: Int) throws(IOMMUError) -> Double {
        switch source {
        case .address(let address): try Self.typedMapRound(ioas, address: address, length: length, iova: iova, count: count)
        case .file(let file): try Self.typedMapFileRound(ioas, file: file, length: length, iova: iova, count: count)
        }
    }

    @inline(never)
    static func typedMapRound(_ ioas: IOAS, address: UInt64, length: UInt64, iova: IOVA, count: Int) throws(IOMMUError) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<count {
            let mapping = try ioas.map(userAddress: address, length: length, at: iova)
            try ioas.unmap(mapping)
        }
        return Double(DispatchTime.now().uptimeNanoseconds - start) / Double(count)
    }

    @inline(never)
    static func typedMapFileRound(_ ioas: IOAS, file: FileDescriptor, length: UInt64, iova: IOVA, count: Int) throws(IOMMUError) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<count {
            let mapping = try ioas.mapFile(fileDescriptor: file, offset: 0, length: length, at: iova)
            try ioas.unmap(mapping)
        }
        return Double(DispatchTime.now().uptimeNanoseconds - start) / Double(count)
    }

    /// ns per map + unmap over `count` pairs of the C loop; throws when any call failed.
    func cRound(_ baseline: CBaseline, _ count: Int) throws(MapLoopFailure) -> Double {
        let fd = ioas.iommufd.fileDescriptor.rawValue
        let id = ioas.id.rawValue
        let iterations = UInt64(count)
        let start = DispatchTime.now().uptimeNanoseconds
        let failures: UInt64
        switch (source, baseline) {
        case (.address(let address), .libc):
            failures = ciommufd_bench_map_unmap_loop_libc(fd, id, address, length, iova.rawValue, iterations)
        case (.address(let address), .inPlace):
            failures = ciommufd_bench_map_unmap_loop_in_place(fd, id, address, length, iova.rawValue, iterations)
        case (.file(let file), .libc):
            failures = ciommufd_bench_map_file_unmap_loop_libc(fd, id, file.rawValue, 0, length, iova.rawValue, iterations)
        case (.file(let file), .inPlace):
            failures = ciommufd_bench_map_file_unmap_loop_in_place(fd, id, file.rawValue, 0, length, iova.rawValue, iterations)
        }
        let elapsed = DispatchTime.now().uptimeNanoseconds - start
        guard failures == 0 else { throw MapLoopFailure(baseline: baseline, ioctl: source.ioctl, failures: failures, iterations: count) }
        return Double(elapsed) / Double(count)
    }
}
