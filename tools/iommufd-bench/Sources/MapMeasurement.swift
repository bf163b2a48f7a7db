import Foundation

/// One workload's result: ns per map + unmap of every round of each side.
struct MapMeasurement {
    /// The target for typed / C (libc), from the issue.
    static let ratioTarget = 1.02

    /// The bytes mapped per call.
    var length: UInt64
    /// The map ioctl.
    var ioctl: String
    /// Map + unmap pairs per round.
    var iterations: Int
    /// The typed API's rounds.
    var typedRounds: [Double]
    /// The C loop's rounds through libc.
    var cLibcRounds: [Double]
    /// The C loop's rounds in place.
    var cInPlaceRounds: [Double]
    /// The typed API's map alone, ns per call, from the split rounds (empty: none were run).
    var mapRounds: [Double] = []
    /// The typed API's unmap alone, ns per call, from the split rounds.
    var unmapRounds: [Double] = []

    /// The typed API's median, ns per map + unmap.
    var typed: Double { median(typedRounds) }
    /// typed / C (libc), ratio of the medians.
    var ratio: Double { ratioOfMedians(typedRounds, cLibcRounds) }
    /// typed / C (in place), ratio of the medians.
    var ratioInPlace: Double { ratioOfMedians(typedRounds, cInPlaceRounds) }
    /// The smallest and largest typed / C (libc) of one round and the C round run next to it.
    var roundRatioRange: (lowest: Double, highest: Double) {
        let ratios = zip(typedRounds, cLibcRounds).map { $0 / $1 }.sorted()
        return (ratios.first ?? .nan, ratios.last ?? .nan)
    }
    /// Whether `ratio` meets ``ratioTarget``.
    var meetsTarget: Bool { ratio <= Self.ratioTarget }
    /// Bytes mapped (and unmapped) per second by the typed API.
    var typedBytesPerSecond: Double { Self.bytesPerSecond(length, typed) }

    /// Bytes mapped per second by the typed API's map alone, from the split rounds (`nil`: none were run).
    var mapBytesPerSecond: Double? { mapRounds.isEmpty ? nil : Self.bytesPerSecond(length, median(mapRounds)) }

    /// `length` bytes per `nanoseconds`, in bytes per second.
    static func bytesPerSecond(_ length: UInt64, _ nanoseconds: Double) -> Double { Double(length) * 1e9 / nanoseconds }

    /// The report: one line of what was measured, one per side, one of the ratios.
    func report(_ title: String) -> [String] {
        func side(_ name: String, _ rounds: [Double]) -> String {
            let nanoseconds = median(rounds)
            return "    \(name.padding(toLength: 11, withPad: " ", startingAt: 0)) \(Self.duration(nanoseconds).leftPadded(12))"
                + "  \(Self.rate(Self.bytesPerSecond(length, nanoseconds)).leftPadded(12))"
        }
        var lines = [
            "\(title): \(Self.size(length)) by \(ioctl) + IOMMU_IOAS_UNMAP, \(iterations) a round, \(typedRounds.count) rounds a side (medians)",
            side("C, libc", cLibcRounds),
            side("C, in place", cInPlaceRounds),
            side("typed", typedRounds),
            String(format: "    ratio typed/C (libc) %.3fx (target <= %.2fx: %@; single rounds %.3f-%.3f), typed/C (in place) %.3fx",
                   ratio, Self.ratioTarget, meetsTarget ? "met" : "NOT met", roundRatioRange.lowest, roundRatioRange.highest, ratioInPlace),
        ]
        if !mapRounds.isEmpty {
            lines.append("    typed map alone \(Self.duration(median(mapRounds))), unmap alone \(Self.duration(median(unmapRounds)))"
                         + " (each call timed; median of \(mapRounds.count) split round\(mapRounds.count == 1 ? "" : "s"), not in the ratio)")
        }
        return lines
    }

    /// A duration in the unit that suits it.
    static func duration(_ nanoseconds: Double) -> String {
        switch nanoseconds {
        case ..<10_000: String(format: "%.1f ns", nanoseconds)
        case ..<10_000_000: String(format: "%.2f us", nanoseconds / 1e3)
        default: String(format: "%.3f ms", nanoseconds / 1e6)
        }
    }

    /// A rate in GiB/s, or MiB/s below one GiB/s.
    static func rate(_ bytesPerSecond: Double) -> String {
        bytesPerSecond >= Double(1 << 30) ? String(format: "%.2f GiB/s", bytesPerSecond / Double(1 << 30))
            : String(format: "%.1f MiB/s", bytesPerSecond / Double(1 << 20))
    }

    /// A size in the largest binary unit that divides it.
    static func size(_ bytes: UInt64) -> String {
        if bytes >= 1 << 30, bytes % (1 << 30) == 0 { return "\(bytes >> 30) GiB" }
        if bytes >= 1 << 20, bytes % (1 << 20) == 0 { return "\(bytes >> 20) MiB" }
        if bytes >= 1 << 10, bytes % (1 << 10) == 0 { return "\(bytes >> 10) KiB" }
        return "\(bytes) bytes"
    }
}

extension String {
    /// The string right-aligned in `width` columns.
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
