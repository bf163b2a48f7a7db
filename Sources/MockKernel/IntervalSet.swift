/// A set of `UInt64` values kept as sorted, disjoint, non-adjacent inclusive intervals.
/// Used for page-index sets (pins) and IOVA spans.
struct IntervalSet: Equatable, Sendable {
    private(set) var intervals: [ClosedRange<UInt64>] = []

    init() {}

    init(_ ranges: [ClosedRange<UInt64>]) {
        for range in ranges { insert(range) }
    }

    var isEmpty: Bool { intervals.isEmpty }

    /// The number of values in the set (saturating at `UInt64.max`).
    var count: UInt64 {
        intervals.reduce(0) { total, range in
            let (sum, overflow) = total.addingReportingOverflow(range.upperBound - range.lowerBound + 1)
            return overflow ? .max : sum
        }
    }

    mutating func insert(_ range: ClosedRange<UInt64>) {
        var lower = range.lowerBound
        var upper = range.upperBound
        var kept: [ClosedRange<UInt64>] = []
        kept.reserveCapacity(intervals.count + 1)
        for existing in intervals {
            let touchesBelow = lower > 0 && existing.upperBound < lower - 1
            let touchesAbove = upper < .max && existing.lowerBound > upper + 1
            if touchesBelow || touchesAbove {
                kept.append(existing)
            } else {
                lower = min(lower, existing.lowerBound)
                upper = max(upper, existing.upperBound)
            }
        }
        kept.append(lower...upper)
        kept.sort { $0.lowerBound < $1.lowerBound }
        intervals = kept
    }

    func intersects(_ range: ClosedRange<UInt64>) -> Bool {
        intervals.contains { $0.overlaps(range) }
    }

    /// The values of `self` that are not in `other`.
    func subtracting(_ other: IntervalSet) -> IntervalSet {
        var result: [ClosedRange<UInt64>] = []
        for range in intervals {
            var pieces = [range]
            for cut in other.intervals {
                pieces = pieces.flatMap { piece -> [ClosedRange<UInt64>] in
                    guard piece.overlaps(cut) else { return [piece] }
                    var parts: [ClosedRange<UInt64>] = []
                    if cut.lowerBound > piece.lowerBound { parts.append(piece.lowerBound...(cut.lowerBound - 1)) }
                    if cut.upperBound < piece.upperBound { parts.append((cut.upperBound + 1)...piece.upperBound) }
                    return parts
                }
            }
            result.append(contentsOf: pieces)
        }
        return IntervalSet(result)
    }

    /// The gaps of the set inside `window`, in ascending order.
    func holes(in window: ClosedRange<UInt64>) -> [ClosedRange<UInt64>] {
        var holes: [ClosedRange<UInt64>] = []
        var cursor = window.lowerBound
        var exhausted = false
        for range in intervals where range.upperBound >= window.lowerBound && range.lowerBound <= window.upperBound {
            if range.lowerBound > cursor { holes.append(cursor...(range.lowerBound - 1)) }
            if range.upperBound >= window.upperBound { exhausted = true; break }
            cursor = range.upperBound + 1
        }
        if !exhausted && cursor <= window.upperBound { holes.append(cursor...window.upperBound) }
        return holes
    }

    /// The set clipped to `window`.
    func clamped(to window: ClosedRange<UInt64>) -> [ClosedRange<UInt64>] {
        intervals.compactMap { range in
            guard range.overlaps(window) else { return nil }
            return max(range.lowerBound, window.lowerBound)...min(range.upperBound, window.upperBound)
        }
    }
}
