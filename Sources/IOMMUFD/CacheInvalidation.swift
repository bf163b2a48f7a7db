import CIOMMUFD

/// One entry of an `IOMMU_HWPT_INVALIDATE` array: a request to drop cached translations of
/// a user-owned table, in one vendor's format. The kernel handles the entries in order and
/// stops at the first it refuses.
public protocol CacheInvalidation: Sendable {
    /// The kernel's layout of one entry (a C struct of the shim, copied byte for byte).
    associatedtype KernelLayout
    /// The array's `data_type`.
    static var dataType: UInt32 { get }
    /// The entry as the kernel reads it.
    var kernelLayout: KernelLayout { get }
}

/// A VT-d stage-1 IOTLB invalidation (`struct iommu_hwpt_vtd_s1_invalidate`,
/// `IOMMU_HWPT_INVALIDATE_DATA_VTD_S1`) for a nested HWPT.
public struct VTDStage1Invalidation: CacheInvalidation, Hashable {
    /// The first address to invalidate, 4 KiB aligned.
    public var address: UInt64
    /// How many 4 KiB pages; `UInt64.max` with address 0 invalidates everything.
    public var pageCount: UInt64
    /// Only leaf entries changed (`IOMMU_VTD_INV_FLAGS_LEAF`): the walk caches may stay.
    public var leafOnly: Bool

    /// Invalidates `pageCount` pages from `address`.
    public init(address: UInt64, pageCount: UInt64, leafOnly: Bool = false) {
        self.address = address
        self.pageCount = pageCount
        self.leafOnly = leafOnly
    }

    /// Everything the nested HWPT caches.
    public static let everything = VTDStage1Invalidation(address: 0, pageCount: .max)

    /// `IOMMU_HWPT_INVALIDATE_DATA_VTD_S1`.
    public static var dataType: UInt32 { IOMMU_HWPT_INVALIDATE_DATA_VTD_S1 }
    /// `struct iommu_hwpt_vtd_s1_invalidate`.
    public var kernelLayout: iommu_hwpt_vtd_s1_invalidate {
        iommu_hwpt_vtd_s1_invalidate(addr: address, npages: pageCount, flags: leafOnly ? IOMMU_VTD_INV_FLAGS_LEAF : 0, __reserved: 0)
    }
}

/// An SMMUv3 command-queue command (`struct iommu_viommu_arm_smmuv3_invalidate`,
/// `IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3`): one 128-bit CMDQ entry (CMD_TLBI_NH_*,
/// CMD_ATC_INV, CMD_CFGI_CD...) as the guest queued it, sent to a vIOMMU.
public struct SMMUv3Command: CacheInvalidation, Hashable {
    /// The command's two words, little-endian as the hardware reads them.
    public var words: (UInt64, UInt64)

    /// The command with these two words.
    public init(word0: UInt64, word1: UInt64) { words = (word0, word1) }

    /// `IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3`.
    public static var dataType: UInt32 { IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3 }
    /// `struct iommu_viommu_arm_smmuv3_invalidate`.
    public var kernelLayout: iommu_viommu_arm_smmuv3_invalidate {
        iommu_viommu_arm_smmuv3_invalidate(cmd: (UInt64(littleEndian: words.0), UInt64(littleEndian: words.1)))
    }

    /// Equal when both words are.
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.words == rhs.words }
    /// Hashes both words.
    public func hash(into hasher: inout Hasher) { hasher.combine(words.0); hasher.combine(words.1) }
}

/// The kernel selftest's invalidation (`struct iommu_hwpt_invalidate_selftest`,
/// `IOMMU_HWPT_INVALIDATE_DATA_SELFTEST`): clears one entry of a selftest nested HWPT's
/// four-entry mock IOTLB, or all of them.
public struct SelftestInvalidation: CacheInvalidation, Hashable {
    /// The raw flags (`IOMMU_TEST_INVALIDATE_FLAG_ALL` is the only one the kernel knows).
    public var flags: UInt32
    /// The entry to clear (0-3; the kernel refuses a larger one with `EINVAL`).
    public var iotlbID: UInt32

    /// Clears entry `iotlbID`.
    public init(iotlbID: UInt32) { self.init(flags: 0, iotlbID: iotlbID) }
    /// An entry with these raw fields (unknown flags are `EOPNOTSUPP`).
    public init(flags: UInt32, iotlbID: UInt32) {
        self.flags = flags
        self.iotlbID = iotlbID
    }

    /// Clears every entry.
    public static let all = SelftestInvalidation(flags: IOMMU_TEST_INVALIDATE_FLAG_ALL, iotlbID: 0)

    /// `IOMMU_HWPT_INVALIDATE_DATA_SELFTEST`.
    public static var dataType: UInt32 { IOMMU_HWPT_INVALIDATE_DATA_SELFTEST }
    /// `struct iommu_hwpt_invalidate_selftest`.
    public var kernelLayout: iommu_hwpt_invalidate_selftest { iommu_hwpt_invalidate_selftest(flags: flags, iotlb_id: iotlbID) }
}
