import CIOMMUFD
import SystemPackage

/// The usable IOVA space of an IOAS, as `IOMMU_IOAS_IOVA_RANGES` reports it.
public struct IOVARanges: Hashable, Sendable {
    /// The usable windows, in ascending order (holes between reserved ranges).
    public var ranges: [IOVARange]
    /// The alignment every IOVA and length must have (`out_iova_alignment`).
    public var alignment: UInt64

    /// Creates the usable IOVA space from its windows in ascending order and the required IOVA alignment in bytes.
    public init(ranges: [IOVARange], alignment: UInt64) {
        self.ranges = ranges
        self.alignment = alignment
    }
}

extension IOAS {
    /// The IOVA windows a mapping may use now. They shrink when devices attach
    /// (aperture, MSI window and other reserved regions) and grow again on detach.
    /// The corresponding ioctl is `IOMMU_IOAS_IOVA_RANGES`, called twice when the
    /// first answer is `EMSGSIZE` (the kernel then reports how many ranges there are).
    public func iovaRanges(fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> IOVARanges {
        let entrySize = MemoryLayout<iommu_iova_range>.stride
        return try unsafe withSizeNegotiation(initialByteCount: 4 * entrySize, operation: .ioasIOVARanges, fileID: fileID, line: line) {
            (buffer) throws(IOMMUError) -> SizedAnswer<IOVARanges> in
            let entries = unsafe buffer.bindMemory(to: iommu_iova_range.self)
            do throws(IOMMUError) {
                let answer = try unsafe IOMMUFDIOCTL.ioasIOVARanges(seam, fd, ioas: try liveID(.ioasIOVARanges, fileID: fileID, line: line), into: entries, fileID: fileID, line: line)
                let ranges = unsafe entries.prefix(Int(answer.count)).map { IOVARange(start: IOVA($0.start), last: IOVA($0.last)) }
                return .complete(IOVARanges(ranges: ranges, alignment: answer.alignment))
            } catch {
                // EMSGSIZE: the kernel said how many there are; ask again with room for them.
                guard error.errno == .messageTooLong, let needed = error.context.reportedCount, Int(needed) > entries.count else { throw error }
                return .needs(byteCount: Int(needed) * entrySize)
            }
        }
    }

    /// Replaces the set of IOVA ranges that must stay usable: devices whose
    /// reserved regions intersect them cannot attach, and kernel-chosen IOVAs stay inside them.
    /// An empty array removes the restriction. The corresponding ioctl is `IOMMU_IOAS_ALLOW_IOVAS`.
    ///
    /// - Throws: `EADDRINUSE` when a range intersects a reserved range, `EINVAL` for an empty or overlapping range.
    public func allowIOVAs(_ ranges: [IOVARange], fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        let entries = ranges.map { iommu_iova_range(start: $0.start.rawValue, last: $0.last.rawValue) }
        try unsafe entries.withUnsafeBufferPointer { (pointer) throws(IOMMUError) in
            try unsafe IOMMUFDIOCTL.ioasAllowIOVAs(seam, fd, ioas: try liveID(.ioasAllowIOVAs, fileID: fileID, line: line), ranges: pointer, fileID: fileID, line: line)
        }
    }

    /// Whether the IOMMU may combine pages into large IOPTEs for this IOAS (the default).
    /// The corresponding ioctl is `IOMMU_OPTION` with `IOMMU_OPTION_HUGE_PAGES`.
    public func hugePagesEnabled(fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> Bool {
        try IOMMUFDIOCTL.option(seam, fd, option: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_GET,
                                object: try liveID(.option, fileID: fileID, line: line), value: 0, fileID: fileID, line: line) != 0
    }

    /// Allows or forbids large IOPTEs for this IOAS.
    ///
    /// - Throws: `EADDRINUSE` when forbidding while a mapping is not page-aligned,
    ///   `EINVAL` when forbidding while a domain already holds mappings.
    public func setHugePages(_ enabled: Bool, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        try iommufd.setOption(IOMMU_OPTION_HUGE_PAGES, objectID: try liveID(.option, fileID: fileID, line: line), value: enabled ? 1 : 0, fileID: fileID, line: line)
    }
}
