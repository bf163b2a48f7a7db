public import IOMMUFD

/// Hands out IOVA ranges for DMA regions inside what the kernel allows.
///
/// - Only inside the usable windows (`IOMMU_IOAS_IOVA_RANGES` / type1's IOVA range
///   capability): reserved regions such as the MSI window are the holes between them.
/// - Below a device's DMA mask (a 32-bit device gets IOVAs under 4 GiB).
/// - Every range aligned to the kernel's `out_iova_alignment`, and regions of 2 MiB or
///   1 GiB aligned to that size, so the IOMMU can use large pages for them.
/// - Freed ranges are quarantined: they are not handed out again until
///   ``releaseQuarantine()`` is called, after the devices that could still use them are
///   known to be quiescent, so a late DMA can never land in reused memory.
///
/// A value type without classes: allocation and free touch only arrays that keep their
/// capacity, and the fast path for a size freed before is a pop from a per-size stack.
public struct IOVAAllocator: Sendable {
    /// Free space, sorted and coalesced: half-open `[start, end)` in bytes.
    private var free: [Span]
    /// Freed, not yet reusable.
    private var quarantined: [Span] = []
    /// Released ranges by exact size, for the fast path (drivers use few sizes, so a
    /// short array searched in order beats hashing).
    private var recycled: [SizeClass] = []
    /// The alignment every range needs (a power of two).
    public let alignment: UInt64
    /// The highest address a range may touch (the DMA mask), inclusive.
    public let limit: UInt64

    struct SizeClass: Sendable {
        var size: UInt64
        var starts: [UInt64]
    }

    struct Span: Sendable, Hashable {
        var start: UInt64
        var end: UInt64
        var length: UInt64 { end - start }
    }

    /// Why ``IOVAAllocator/allocate(_:alignment:)`` or ``IOVAAllocator/free(_:)`` refused a request.
    public enum AllocationError: Error, Equatable, CustomStringConvertible {
        /// No free range of this size and alignment is left (the quarantine holds `quarantined` bytes).
        case exhausted(length: UInt64, alignment: UInt64, quarantined: UInt64)
        /// A zero-byte range was requested: every IOVA range has at least one byte.
        case zeroLength
        /// Not an allocation of this allocator, or freed twice.
        case notAllocated(IOVA)

        public var description: String {
            switch self {
            case .exhausted(let length, let alignment, let quarantined):
                "no free IOVA range of 0x\(String(length, radix: 16)) bytes aligned to 0x\(String(alignment, radix: 16))"
                    + (quarantined > 0 ? "; 0x\(String(quarantined, radix: 16)) bytes wait in quarantine (release it once the device is quiescent)" : "")
            case .zeroLength: "an IOVA range has at least one byte"
            case .notAllocated(let iova): "\(iova) was not allocated here (or was freed twice)"
            }
        }
    }

    /// An allocator over the kernel's windows, below `dmaMask` (for example
    /// `0xffff_ffff` for a 32-bit device). Address 0 is never handed out: a zero IOVA
    /// looks like a missing one in most descriptors.
    public init(ranges: IOVARanges, dmaMask: UInt64 = .max) {
        alignment = max(ranges.alignment, 4096)
        limit = dmaMask
        var spans: [Span] = []
        for range in ranges.ranges {
            let first = max(range.start.rawValue, alignment)
            let last = min(range.last.rawValue, dmaMask)
            guard first <= last else { continue }
            let start = Self.roundUp(first, to: alignment)
            // End is exclusive; keep it representable (the top byte of a 64-bit space is lost).
            let end = last == .max ? Self.roundDown(.max, to: alignment) : Self.roundDown(last + 1, to: alignment)
            if start < end { spans.append(Span(start: start, end: end)) }
        }
        free = spans
        free.reserveCapacity(max(16, spans.count * 2))
        quarantined.reserveCapacity(16)
    }

    /// Bytes free now (not counting the quarantine).
    public var freeBytes: UInt64 { free.reduce(0) { $0 + $1.length } + recycled.reduce(0) { $0 + $1.size * UInt64($1.starts.count) } }
    /// Bytes waiting in quarantine.
    public var quarantinedBytes: UInt64 { quarantined.reduce(0) { $0 + $1.length } }

    /// The alignment a region of `length` bytes gets: the kernel's, raised to 2 MiB or
    /// 1 GiB for regions at least that large.
    public func naturalAlignment(for length: UInt64) -> UInt64 {
        if length >= 1 << 30 { return max(alignment, 1 << 30) }
        if length >= 1 << 21 { return max(alignment, 1 << 21) }
        return alignment
    }

    /// Allocates `length` bytes (rounded up to the alignment).
    public mutating func allocate(_ length: UInt64, alignment requested: UInt64? = nil) throws(AllocationError) -> IOVARange {
        guard length > 0 else { throw .zeroLength }
        let size = Self.roundUp(length, to: alignment)
        let align = max(requested ?? naturalAlignment(for: size), alignment)
        // Fast path: a range of exactly this size came back through the quarantine.
        // Mutated in place, so no array is copied.
        for index in recycled.indices where recycled[index].size == size {
            if let start = recycled[index].starts.last, start % align == 0 {
                recycled[index].starts.removeLast()
                return IOVARange(start: IOVA(start), length: size)
            }
            break
        }
        for index in free.indices {
            let span = free[index]
            let start = Self.roundUp(span.start, to: align)
            guard start >= span.start, start < span.end, span.end - start >= size else { continue }
            let end = start + size
            // Carve [start, end) out of the span, in place: keep what lies before and after.
            if span.start < start && end < span.end {
                free[index].end = start
                free.insert(Span(start: end, end: span.end), at: index + 1)
            } else if span.start < start {
                free[index].end = start
            } else if end < span.end {
                free[index].start = end
            } else {
                free.remove(at: index)
            }
            return IOVARange(start: IOVA(start), length: size)
        }
        // The recycled stacks may hold the space a fresh carve needs: give it back and retry once.
        if recycled.contains(where: { !$0.starts.isEmpty }) {
            for sizeClass in recycled { for start in sizeClass.starts { insertFree(Span(start: start, end: start + sizeClass.size)) } }
            recycled.removeAll(keepingCapacity: true)
            return try allocate(length, alignment: requested)
        }
        throw .exhausted(length: size, alignment: align, quarantined: quarantinedBytes)
    }

    /// Returns a range; it stays in quarantine until ``releaseQuarantine()``.
    public mutating func free(_ range: IOVARange) throws(AllocationError) {
        let length = range.length ?? .max
        let span = Span(start: range.start.rawValue, end: range.start.rawValue &+ length)
        // Free spans are sorted: only the last one starting below the end can overlap.
        var low = 0
        var high = free.count
        while low < high {
            let middle = (low + high) / 2
            if free[middle].start < span.end { low = middle + 1 } else { high = middle }
        }
        let overlapsFree = low > 0 && free[low - 1].end > span.start
        // The scans below run to the end without branching on what they find, so they
        // vectorize: a double free is the rare case, and the common case reads every entry.
        let overlapsQuarantine = unsafe quarantined.withUnsafeBufferPointer { spans in
            var overlaps: UInt64 = 0
            for unsafe other in unsafe spans { overlaps |= (other.start < span.end ? 1 : 0) & (span.start < other.end ? 1 : 0) }
            return overlaps != 0
        }
        var inRecycled = false
        for index in recycled.indices where recycled[index].size == length {
            inRecycled = unsafe recycled[index].starts.withUnsafeBufferPointer { starts in
                var found: UInt64 = 0
                for unsafe start in unsafe starts { found |= start == span.start ? 1 : 0 }
                return found != 0
            }
            break
        }
        guard span.start % alignment == 0, !overlapsFree, !overlapsQuarantine, !inRecycled else { throw .notAllocated(range.start) }
        quarantined.append(span)
    }

    /// Returns a range no device ever saw (its mapping failed): reusable at once, no quarantine.
    public mutating func returnUnused(_ range: IOVARange) {
        guard let length = range.length else { return }
        recycle(Span(start: range.start.rawValue, end: range.start.rawValue + length))
    }

    /// Makes every quarantined range reusable. Call it once the devices that could still
    /// reach those IOVAs are quiescent (bus mastering off, queues drained, or reset).
    public mutating func releaseQuarantine() {
        for span in quarantined { recycle(span) }
        quarantined.removeAll(keepingCapacity: true)
    }

    private mutating func recycle(_ span: Span) {
        for index in recycled.indices where recycled[index].size == span.length {
            recycled[index].starts.append(span.start)
            return
        }
        recycled.append(SizeClass(size: span.length, starts: [span.start]))
    }

    private mutating func insertFree(_ span: Span) {
        var index = free.firstIndex { $0.start > span.start } ?? free.endIndex
        free.insert(span, at: index)
        // Coalesce with the neighbours.
        if index + 1 < free.count, free[index].end == free[index + 1].start {
            free[index].end = free[index + 1].end
            free.remove(at: index + 1)
        }
        if index > 0, free[index - 1].end == free[index].start {
            free[index - 1].end = free[index].end
            free.remove(at: index)
            index -= 1
        }
    }

    @inline(__always)
    static func roundUp(_ value: UInt64, to alignment: UInt64) -> UInt64 {
        let (sum, overflow) = value.addingReportingOverflow(alignment - 1)
        return overflow ? roundDown(.max, to: alignment) : sum & ~(alignment - 1)
    }

    @inline(__always)
    static func roundDown(_ value: UInt64, to alignment: UInt64) -> UInt64 { value & ~(alignment - 1) }
}
