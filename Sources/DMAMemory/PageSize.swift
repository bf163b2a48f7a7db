import CIOMMUFD

/// The page size memory is backed with: the base page, or a hugepage size.
public enum PageSize: Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// 4 KiB.
    case base
    /// 2 MiB (x86-64 PMD).
    case huge2MiB
    /// 1 GiB (x86-64 PUD).
    case huge1GiB

    /// The size in bytes.
    public var bytes: Int {
        switch self {
        case .base: 4096
        case .huge2MiB: 2 << 20
        case .huge1GiB: 1 << 30
        }
    }

    /// The hugepage pool directory under `/sys/kernel/mm/hugepages`, such as `hugepages-2048kB`.
    public var poolDirectory: String { "hugepages-\(bytes >> 10)kB" }

    /// `MFD_HUGETLB` with the page size encoded (`MFD_HUGE_2MB`, `MFD_HUGE_1GB`).
    var memfdFlags: UInt32 {
        switch self {
        case .base: 0
        default: CIOMMUFD_MFD_HUGETLB | (UInt32(bytes.trailingZeroBitCount) << CIOMMUFD_MFD_HUGE_SHIFT)
        }
    }

    /// The page size whose byte count is `bytes`, if it is one of these.
    public init?(bytes: Int) {
        guard let size = Self.allCases.first(where: { $0.bytes == bytes }) else { return nil }
        self = size
    }

    public var description: String {
        switch self {
        case .base: "4 KiB"
        case .huge2MiB: "2 MiB"
        case .huge1GiB: "1 GiB"
        }
    }

    /// `length` rounded up to a whole number of pages.
    func roundUp(_ length: Int) -> Int { (length + bytes - 1) & ~(bytes - 1) }
}
