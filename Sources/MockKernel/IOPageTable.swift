import SystemPackage

/// The model of one IOAS's page table (`struct io_pagetable`): its areas, the reserved
/// and allowed IOVA ranges, the attached domains and the IOVA alignment they impose.
struct IOPageTable {
    private(set) var areas: [MappedArea] = []
    var reserved: [ReservedRange] = []
    var allowed: [ClosedRange<UInt64>] = []
    var disableLargePages = false
    /// Attached domains: HWPT id and its I/O page size.
    var domains: [(hwptID: UInt32, ioPageSize: UInt64)] = []

    /// The alignment every IOVA and length must have (`iopt->iova_alignment`).
    var iovaAlignment: UInt64 {
        var alignment: UInt64 = disableLargePages ? pageSize : 1
        for domain in domains { alignment = max(alignment, domain.ioPageSize) }
        return alignment
    }

    var reservedSet: IntervalSet { IntervalSet(reserved.map(\.range)) }

    // MARK: Areas

    func areas(overlapping range: ClosedRange<UInt64>) -> [MappedArea] {
        areas.filter { ($0.start...$0.last).overlaps(range) }
    }

    mutating func insert(_ area: MappedArea) {
        let index = areas.firstIndex { $0.start > area.start } ?? areas.endIndex
        areas.insert(area, at: index)
    }

    mutating func removeArea(startingAt start: UInt64) -> MappedArea? {
        guard let index = areas.firstIndex(where: { $0.start == start }) else { return nil }
        return areas.remove(at: index)
    }

    mutating func removeAllAreas() -> [MappedArea] {
        defer { areas.removeAll() }
        return areas
    }

    // MARK: IOVA checks, following drivers/iommu/iommufd/io_pagetable.c

    /// `iopt_check_iova`: may a fixed mapping go at `iova`?
    func checkFixed(iova: UInt64, length: UInt64) -> Errno? {
        if iova & (iovaAlignment - 1) != 0 { return .invalidArgument }
        let (last, overflow) = iova.addingReportingOverflow(length - 1)
        if overflow { return .overflow }
        if reservedSet.intersects(iova...last) { return .invalidArgument }
        if !areas(overlapping: iova...last).isEmpty { return .fileExists }
        return nil
    }

    /// `iopt_alloc_iova`: the kernel's choice of IOVA for `length` bytes whose source starts at `address`.
    func allocate(length: UInt64, address: UInt64) -> Result<UInt64, Errno> {
        let pageOffset = address % pageSize
        if length == 0 || length >= ulongMax / 2 { return .failure(.overflow) }
        let lengthAlignment = roundUpToPowerOfTwo(length)
        var alignment = address == 0 ? lengthAlignment : min(lengthAlignment, UInt64(1) << UInt64(address.trailingZeroBitCount))
        if alignment >= hugePageSize { alignment = hugePageSize }
        if alignment < iovaAlignment { return .failure(.invalidArgument) }

        let window = pageSize...(ulongMax - pageSize)
        let allowedSpans = allowed.isEmpty ? [window] : IntervalSet(allowed).clamped(to: window)
        var used = reservedSet
        for area in areas { used.insert(area.start...area.last) }
        for span in allowedSpans {
            guard let spanStart = alignedStart(span.lowerBound, last: span.upperBound, length: length, alignment: alignment, pageOffset: pageOffset) else { continue }
            for hole in used.holes(in: spanStart...span.upperBound) {
                if let start = alignedStart(hole.lowerBound, last: hole.upperBound, length: length, alignment: alignment, pageOffset: pageOffset) {
                    return .success(start)
                }
            }
        }
        return .failure(.noSpace)
    }

    /// `__alloc_iova_check_range`.
    private func alignedStart(_ start: UInt64, last: UInt64, length: UInt64, alignment: UInt64, pageOffset: UInt64) -> UInt64? {
        let (bumped, overflow) = start.addingReportingOverflow(alignment - 1)
        if overflow { return nil }
        let aligned = (bumped & ~(alignment - 1)) | pageOffset
        if aligned >= last || last - aligned < length - 1 { return nil }
        return aligned
    }

    /// `iopt_reserve_iova`: a reservation may not cover a mapping or an allowed range.
    mutating func reserve(_ range: ClosedRange<UInt64>, owner: ReservedRange.Owner) -> Errno? {
        if !areas(overlapping: range).isEmpty { return .addressInUse }
        if allowed.contains(where: { $0.overlaps(range) }) { return .addressInUse }
        reserved.append(ReservedRange(range: range, owner: owner))
        return nil
    }

    /// Every existing area conforms to a larger alignment (`iopt_check_iova_alignment`).
    func areasConform(to alignment: UInt64) -> Bool {
        let mask = alignment - 1
        return areas.allSatisfy { area in
            area.start & mask == 0 && area.length & mask == 0 && (area.startByte % pageSize) & mask == 0
        }
    }

    /// The usable windows: the holes of the reserved set over the whole 64-bit space.
    var usableRanges: [ClosedRange<UInt64>] {
        reservedSet.holes(in: 0...ulongMax)
    }
}

func roundUpToPowerOfTwo(_ value: UInt64) -> UInt64 {
    if value <= 1 { return 1 }
    let shift = 64 - (value - 1).leadingZeroBitCount
    return shift >= 64 ? 0 : UInt64(1) << UInt64(shift)
}
