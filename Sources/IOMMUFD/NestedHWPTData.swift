import CIOMMUFD

/// The vendor data a nested HWPT is allocated with: where the user-owned first-stage table
/// lives and how the IOMMU walks it, in one vendor's format (`IOMMU_HWPT_ALLOC`'s
/// `data_type`, `data_len`, `data_uptr`). The kernel validates the data and refuses a
/// format the device's IOMMU does not take (`EOPNOTSUPP`), a length that is too short or
/// longer than its struct (`EINVAL`), and bits it does not know.
public protocol NestedHWPTData: Sendable {
    /// The kernel's layout of the data (a C struct of the shim, copied byte for byte).
    associatedtype KernelLayout
    /// The format this data is in.
    static var format: NestedHWPTFormat { get }
    /// The data as the kernel reads it.
    var kernelLayout: KernelLayout { get }
}

/// A VT-d first-stage (stage-1) table for a nested HWPT on a nesting parent
/// (`struct iommu_hwpt_vtd_s1`, `IOMMU_HWPT_DATA_VTD_S1`).
public struct VTDStage1Table: NestedHWPTData, Hashable {
    /// The table's walk options (`IOMMU_VTD_S1_*`).
    public struct Options: OptionSet, Sendable, Hashable {
        public let rawValue: UInt64
        /// Creates the set from `IOMMU_VTD_S1_*` bits.
        public init(rawValue: UInt64) { self.rawValue = rawValue }
        /// Supervisor requests (SRE).
        public static let supervisorRequests = Options(rawValue: IOMMU_VTD_S1_SRE)
        /// Extended access flag (EAFE).
        public static let extendedAccessFlag = Options(rawValue: IOMMU_VTD_S1_EAFE)
        /// Write protection for supervisor requests (WPE).
        public static let writeProtect = Options(rawValue: IOMMU_VTD_S1_WPE)
    }

    /// The walk options.
    public var options: Options
    /// The table's root, an address in the nesting parent's (second-stage) address space.
    public var tableAddress: UInt64
    /// The input address width the table translates: 48 (4-level) or 57 (5-level).
    public var addressWidth: UInt32

    /// Describes a first-stage table rooted at `tableAddress`.
    public init(tableAddress: UInt64, addressWidth: UInt32 = 48, options: Options = []) {
        self.tableAddress = tableAddress
        self.addressWidth = addressWidth
        self.options = options
    }

    /// `IOMMU_HWPT_DATA_VTD_S1`.
    public static var format: NestedHWPTFormat { .vtdStage1 }
    /// `struct iommu_hwpt_vtd_s1`.
    public var kernelLayout: iommu_hwpt_vtd_s1 {
        iommu_hwpt_vtd_s1(flags: options.rawValue, pgtbl_addr: tableAddress, addr_width: addressWidth, __reserved: 0)
    }
}

/// An SMMUv3 stream table entry the user controls for a nested HWPT on a vIOMMU
/// (`struct iommu_hwpt_arm_smmuv3`, `IOMMU_HWPT_DATA_ARM_SMMUV3`): the first two
/// little-endian words of the guest's STE (Config, S1ContextPtr, S1CDMax and friends).
public struct SMMUv3STE: NestedHWPTData, Hashable {
    /// STE words 0 and 1, little-endian as the hardware reads them.
    public var words: (UInt64, UInt64)

    /// The STE with these two words.
    public init(word0: UInt64, word1: UInt64) { words = (word0, word1) }

    /// `IOMMU_HWPT_DATA_ARM_SMMUV3`.
    public static var format: NestedHWPTFormat { .armSMMUv3 }
    /// `struct iommu_hwpt_arm_smmuv3`.
    public var kernelLayout: iommu_hwpt_arm_smmuv3 {
        iommu_hwpt_arm_smmuv3(ste: (UInt64(littleEndian: words.0), UInt64(littleEndian: words.1)))
    }

    /// Equal when both words are.
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.words == rhs.words }
    /// Hashes both words.
    public func hash(into hasher: inout Hasher) { hasher.combine(words.0); hasher.combine(words.1) }
}

/// An AMD guest device table entry for a nested HWPT on a vIOMMU
/// (`struct iommu_hwpt_amd_guest`, `IOMMU_HWPT_DATA_AMD_GUEST`): the guest's 256-bit DTE
/// (GCR3 table root, GLX, guest translation valid).
public struct AMDGuestDTE: NestedHWPTData, Hashable {
    /// The DTE's four 64-bit words.
    public var words: (UInt64, UInt64, UInt64, UInt64)

    /// The DTE with these four words.
    public init(words: (UInt64, UInt64, UInt64, UInt64)) { self.words = words }

    /// `IOMMU_HWPT_DATA_AMD_GUEST`.
    public static var format: NestedHWPTFormat { .amdGuest }
    /// `struct iommu_hwpt_amd_guest`.
    public var kernelLayout: iommu_hwpt_amd_guest { iommu_hwpt_amd_guest(dte: words) }

    /// Equal when all four words are.
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.words == rhs.words }
    /// Hashes the four words.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(words.0); hasher.combine(words.1); hasher.combine(words.2); hasher.combine(words.3)
    }
}

/// The kernel selftest's nested data (`struct iommu_hwpt_selftest`, `IOMMU_HWPT_DATA_SELFTEST`):
/// the value every entry of the nested domain's four-entry mock IOTLB starts with. Only
/// kernels built with `CONFIG_IOMMUFD_TEST` (and MockKernel) take it.
public struct SelftestNestedTable: NestedHWPTData, Hashable {
    /// The initial value of each mock IOTLB entry (`IOMMU_TEST_IOTLB_DEFAULT` by default).
    public var iotlb: UInt32

    /// Nested data whose IOTLB entries start as `iotlb`.
    public init(iotlb: UInt32 = IOMMU_TEST_IOTLB_DEFAULT) { self.iotlb = iotlb }

    /// `IOMMU_HWPT_DATA_SELFTEST`.
    public static var format: NestedHWPTFormat { .selftest }
    /// `struct iommu_hwpt_selftest`.
    public var kernelLayout: iommu_hwpt_selftest { iommu_hwpt_selftest(iotlb: iotlb, pagetable_type: 0) }
}
