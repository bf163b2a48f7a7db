import CIOMMUFD
import SystemPackage

/// The usable IOVA space of an IOAS, as `IOMMU_IOAS_IOVA_RANGES` reports it.
public struct IOVARanges: Hashable, Sendable {
    /// The usable windows, in ascending order (holes between reserved ranges).
    public var ranges: [IOVARange]
    /// The alignment every IOVA and length must have (`out_iova_alignment`).
    public var alignment: UInt64

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
    public func iovaRanges(fileID: String = #fileID, line: Int = #line) throws(IOMMUError) -> IOVARanges {
        var capacity = 4
        while true {
            var buffer = [iommu_iova_range](repeating: iommu_iova_range(), count: capacity)
            var command = iommu_ioas_iova_ranges()
            command.size = UInt32(MemoryLayout<iommu_ioas_iova_ranges>.size)
            command.ioas_id = id.rawValue
            command.num_iovas = UInt32(capacity)
            let outcome: Result<Void, IOMMUError> = buffer.withUnsafeMutableBufferPointer { pointer in
                command.allowed_iovas = UInt64(UInt(bitPattern: pointer.baseAddress))
                do throws(IOMMUError) {
                    try iommufd.perform(IOMMU_IOAS_IOVA_RANGES, &command, .ioasIOVARanges,
                                        IOMMUErrorContext(objectID: id.rawValue), fileID: fileID, line: line)
                    return .success(())
                } catch {
                    return .failure(error)
                }
            }
            switch outcome {
            case .success:
                let ranges = buffer.prefix(Int(command.num_iovas)).map {
                    IOVARange(start: IOVA($0.start), last: IOVA($0.last))
                }
                return IOVARanges(ranges: ranges, alignment: command.out_iova_alignment)
            case .failure(let error) where error.errno == .messageTooLong && Int(command.num_iovas) > capacity:
                capacity = Int(command.num_iovas)
            case .failure(let error):
                throw error
            }
        }
    }

    /// Replaces the set of IOVA ranges that must stay usable: devices whose
    /// reserved regions intersect them cannot attach, and kernel-chosen IOVAs stay inside them.
    /// An empty array removes the restriction. The corresponding ioctl is `IOMMU_IOAS_ALLOW_IOVAS`.
    ///
    /// - Throws: `EADDRINUSE` when a range intersects a reserved range, `EINVAL` for an empty or overlapping range.
    public func allowIOVAs(_ ranges: [IOVARange], fileID: String = #fileID, line: Int = #line) throws(IOMMUError) {
        var entries = ranges.map { iommu_iova_range(start: $0.start.rawValue, last: $0.last.rawValue) }
        var command = iommu_ioas_allow_iovas()
        command.size = UInt32(MemoryLayout<iommu_ioas_allow_iovas>.size)
        command.ioas_id = id.rawValue
        command.num_iovas = UInt32(entries.count)
        let outcome: Result<Void, IOMMUError> = entries.withUnsafeMutableBufferPointer { pointer in
            command.allowed_iovas = UInt64(UInt(bitPattern: pointer.baseAddress))
            do throws(IOMMUError) {
                try iommufd.perform(IOMMU_IOAS_ALLOW_IOVAS, &command, .ioasAllowIOVAs,
                                    IOMMUErrorContext(objectID: id.rawValue), fileID: fileID, line: line)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try outcome.get()
    }

    /// Whether the IOMMU may combine pages into large IOPTEs for this IOAS (the default).
    /// The corresponding ioctl is `IOMMU_OPTION` with `IOMMU_OPTION_HUGE_PAGES`.
    public func hugePagesEnabled(fileID: String = #fileID, line: Int = #line) throws(IOMMUError) -> Bool {
        var command = iommu_option()
        command.size = UInt32(MemoryLayout<iommu_option>.size)
        command.option_id = IOMMU_OPTION_HUGE_PAGES
        command.op = IOMMU_OPTION_OP_GET
        command.object_id = id.rawValue
        try iommufd.perform(IOMMU_OPTION, &command, .option, IOMMUErrorContext(objectID: id.rawValue), fileID: fileID, line: line)
        return command.val64 != 0
    }

    /// Allows or forbids large IOPTEs for this IOAS.
    ///
    /// - Throws: `EADDRINUSE` when forbidding while a mapping is not page-aligned,
    ///   `EINVAL` when forbidding while a domain already holds mappings.
    public func setHugePages(_ enabled: Bool, fileID: String = #fileID, line: Int = #line) throws(IOMMUError) {
        try iommufd.setOption(IOMMU_OPTION_HUGE_PAGES, objectID: id.rawValue, value: enabled ? 1 : 0, fileID: fileID, line: line)
    }
}
