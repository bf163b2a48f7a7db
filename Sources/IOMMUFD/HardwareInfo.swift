import CIOMMUFD

/// What `IOMMU_GET_HW_INFO` says about the IOMMU behind one device: the vendor's registers,
/// decoded, the generic capabilities and the PASID width. The kernel rewrites `data_len` to
/// the length of its own structure and zero-fills the rest of a larger buffer, so a field
/// the kernel does not know reads as zero.
public struct HardwareInfo: Sendable, Hashable {
    /// The vendor structure the kernel wrote (`out_data_type`).
    public var kind: Kind
    /// The vendor registers, decoded.
    public var vendor: Vendor
    /// The generic capabilities (`out_capabilities`).
    public var capabilities: Capabilities
    /// `out_max_pasid_log2`: the device's PASID width in bits; 0 when it takes no PASID.
    public var maxPASIDLog2: UInt8

    /// The vendor structure of an answer (`enum iommu_hw_info_type`, and the selftest's).
    public enum Kind: Sendable, Hashable {
        /// No vendor data (`IOMMU_HW_INFO_TYPE_NONE`).
        case none
        /// `IOMMU_HW_INFO_TYPE_INTEL_VTD`.
        case intelVTd
        /// `IOMMU_HW_INFO_TYPE_ARM_SMMUV3`.
        case armSMMUv3
        /// `IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV`.
        case tegra241CMDQV
        /// `IOMMU_HW_INFO_TYPE_AMD`.
        case amd
        /// The kernel selftest's mock IOMMU (`IOMMU_HW_INFO_TYPE_SELFTEST`, 0xfeedbeef).
        case selftest
        /// A type this toolkit does not know.
        case other(UInt32)

        /// The kernel's number for it.
        public var rawValue: UInt32 {
            switch self {
            case .none: IOMMU_HW_INFO_TYPE_NONE
            case .intelVTd: IOMMU_HW_INFO_TYPE_INTEL_VTD
            case .armSMMUv3: IOMMU_HW_INFO_TYPE_ARM_SMMUV3
            case .tegra241CMDQV: IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV
            case .amd: IOMMU_HW_INFO_TYPE_AMD
            case .selftest: Self.selftestType
            case .other(let value): value
            }
        }

        /// The kind the kernel's number names.
        public init(rawValue: UInt32) {
            switch rawValue {
            case IOMMU_HW_INFO_TYPE_NONE: self = .none
            case IOMMU_HW_INFO_TYPE_INTEL_VTD: self = .intelVTd
            case IOMMU_HW_INFO_TYPE_ARM_SMMUV3: self = .armSMMUv3
            case IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV: self = .tegra241CMDQV
            case IOMMU_HW_INFO_TYPE_AMD: self = .amd
            case Self.selftestType: self = .selftest
            default: self = .other(rawValue)
            }
        }

        /// `IOMMU_HW_INFO_TYPE_SELFTEST` (iommufd_test.h).
        static let selftestType: UInt32 = 0xfeed_beef
    }

    /// The generic capability bits (`IOMMU_HW_CAP_*`).
    public struct Capabilities: OptionSet, Sendable, Hashable {
        public let rawValue: UInt64
        /// Creates the set from `out_capabilities`.
        public init(rawValue: UInt64) { self.rawValue = rawValue }
        /// The IOMMU can track dirty pages for this device (a dirty-tracking HWPT allocates).
        public static let dirtyTracking = Capabilities(rawValue: IOMMU_HW_CAP_DIRTY_TRACKING)
        /// The device's PASID capability allows execute requests.
        public static let pasidExecute = Capabilities(rawValue: IOMMU_HW_CAP_PCI_PASID_EXEC)
        /// The device's PASID capability allows privileged-mode requests.
        public static let pasidPrivileged = Capabilities(rawValue: IOMMU_HW_CAP_PCI_PASID_PRIV)
        /// ATS is not supported for this device (by it or by the IOMMU path).
        public static let atsNotSupported = Capabilities(rawValue: IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED)
    }

    /// The vendor registers, by kind.
    public enum Vendor: Sendable, Hashable {
        /// No vendor data.
        case none
        /// Intel VT-d.
        case intelVTd(VTdRegisters)
        /// Arm SMMUv3.
        case armSMMUv3(SMMUv3Registers)
        /// NVIDIA Tegra241 CMDQV (an SMMUv3 extension).
        case tegra241CMDQV(Tegra241CMDQVRegisters)
        /// AMD-Vi.
        case amd(AMDRegisters)
        /// The kernel selftest's mock IOMMU: its test register (0xdeadbeef).
        case selftest(testRegister: UInt32)
        /// A type this toolkit does not know: the bytes the kernel wrote.
        case other([UInt8])
    }

    /// Decodes an answer: `kind` and the bytes of vendor data the kernel wrote (`data_len`
    /// of them).
    public init(kind: Kind, data: [UInt8], capabilities: UInt64, maxPASIDLog2: UInt8) {
        self.kind = kind
        self.capabilities = Capabilities(rawValue: capabilities)
        self.maxPASIDLog2 = maxPASIDLog2
        // Fields past what the kernel wrote read as zero.
        let dataLength = data.count
        let bytes = Array(data.prefix(64)) + [UInt8](repeating: 0, count: max(0, 64 - data.count))
        func load<T>(_ type: T.Type) -> T { unsafe bytes.withUnsafeBytes { unsafe $0.loadUnaligned(as: T.self) } }
        switch kind {
        case .none:
            vendor = .none
        case .intelVTd:
            let vtd = load(iommu_hw_info_vtd.self)
            vendor = .intelVTd(VTdRegisters(flags: vtd.flags, capability: vtd.cap_reg, extendedCapability: vtd.ecap_reg))
        case .armSMMUv3:
            let smmu = load(iommu_hw_info_arm_smmuv3.self)
            let idr = [smmu.idr.0, smmu.idr.1, smmu.idr.2, smmu.idr.3, smmu.idr.4, smmu.idr.5]
            vendor = .armSMMUv3(SMMUv3Registers(flags: smmu.flags, idr: idr, iidr: smmu.iidr, aidr: smmu.aidr))
        case .tegra241CMDQV:
            let cmdqv = load(iommu_hw_info_tegra241_cmdqv.self)
            vendor = .tegra241CMDQV(Tegra241CMDQVRegisters(flags: cmdqv.flags, version: cmdqv.version,
                                                           log2VirtualCommandQueues: cmdqv.log2vcmdqs, log2VirtualSIDs: cmdqv.log2vsids))
        case .amd:
            let amd = load(iommu_hw_info_amd.self)
            vendor = .amd(AMDRegisters(extendedFeatures: amd.efr, extendedFeatures2: amd.efr2))
        case .selftest:
            vendor = .selftest(testRegister: load((UInt32, UInt32).self).1)
        case .other:
            vendor = .other(Array(bytes.prefix(min(dataLength, bytes.count))))
        }
    }
}

/// Intel VT-d's capability and extended capability registers (bit positions from the VT-d
/// specification, as `drivers/iommu/intel/iommu.h` reads them).
public struct VTdRegisters: Sendable, Hashable {
    /// `IOMMU_HW_INFO_VTD_*` flags; the kernel always sets the erratum 772415 (SPR17) flag.
    public var flags: UInt32
    /// `cap_reg`.
    public var capability: UInt64
    /// `ecap_reg`.
    public var extendedCapability: UInt64

    /// Creates the registers from the kernel's answer.
    public init(flags: UInt32, capability: UInt64, extendedCapability: UInt64) {
        self.flags = flags
        self.capability = capability
        self.extendedCapability = extendedCapability
    }

    private func cap(_ bit: UInt64) -> Bool { capability >> bit & 1 != 0 }
    private func ecap(_ bit: UInt64) -> Bool { extendedCapability >> bit & 1 != 0 }

    /// MGAW: the widest input address the IOMMU translates, in bits (`cap_mgaw`).
    public var maximumGuestAddressWidth: Int { Int((capability >> 16) & 0x3f) + 1 }
    /// SAGAW: the second-stage page-table depths supported, as address widths (39, 48, 57).
    public var supportedAddressWidths: [Int] {
        [(1, 39), (2, 48), (3, 57)].filter { (capability >> 8) & 0x1f & (1 << UInt64($0.0)) != 0 }.map(\.1)
    }
    /// CM: caching mode, set by emulated IOMMUs (this is a VM).
    public var cachingMode: Bool { cap(7) }
    /// SMTS: scalable mode (needed for PASIDs, first-stage tables, nesting and dirty tracking).
    public var scalableMode: Bool { ecap(43) }
    /// FLTS: first-stage (x86 format) translation.
    public var firstStage: Bool { ecap(47) }
    /// SLTS: second-stage translation in scalable mode.
    public var secondStage: Bool { ecap(46) }
    /// NEST: nested translation.
    public var nesting: Bool { ecap(26) }
    /// PASID support (`ecap_pasid`).
    public var pasid: Bool { ecap(40) }
    /// PSS: the PASID width in bits, when PASIDs are supported.
    public var pasidBits: Int? { pasid ? Int((extendedCapability >> 35) & 0x1f) + 1 : nil }
    /// SLADS: second-stage accessed/dirty bits.
    public var secondStageAccessDirty: Bool { ecap(45) }
    /// SMPWC: page-walk coherency in scalable mode.
    public var scalablePageWalkCoherency: Bool { ecap(48) }
    /// PRS: page requests (I/O page faults).
    public var pageRequests: Bool { ecap(29) }
    /// DT: device IOTLBs (ATS).
    public var deviceIOTLB: Bool { ecap(2) }
    /// IR: interrupt remapping.
    public var interruptRemapping: Bool { ecap(3) }
    /// The kernel can give a second-stage domain dirty tracking (`ssads_supported`: scalable
    /// mode, SLADS and SMPWC).
    public var dirtyTrackingCapable: Bool { scalableMode && secondStageAccessDirty && scalablePageWalkCoherency }
    /// The kernel can make a nesting parent (`nested_supported`: scalable mode and NEST).
    public var nestingCapable: Bool { scalableMode && nesting }

    /// The features, named, with the decoded widths.
    public var featureNames: [String] {
        var names: [String] = []
        if deviceIOTLB { names.append("DT device-TLB") }
        if interruptRemapping { names.append("IR interrupt-remapping") }
        if ecap(4) { names.append("EIM x2APIC") }
        if nesting { names.append("NEST nested") }
        if pageRequests { names.append("PRS page-requests") }
        if pasid { names.append("PASID") }
        if scalableMode { names.append("SMTS scalable-mode") }
        if secondStageAccessDirty { names.append("SLADS dirty-bits") }
        if secondStage { names.append("SLTS second-level") }
        if firstStage { names.append("FLTS first-level") }
        if scalablePageWalkCoherency { names.append("SMPWC") }
        if let pasidBits { names.append("PSS \(pasidBits)-bit PASIDs") }
        if cachingMode { names.append("CM caching-mode (an emulated IOMMU: this is a VM)") }
        names.append("MGAW \(maximumGuestAddressWidth)-bit")
        let widths = supportedAddressWidths
        names.append("SAGAW " + (widths.isEmpty ? "none" : widths.map { "\($0)-bit/\(($0 - 12) / 9)-level" }.joined(separator: ",")))
        return names
    }
}

/// Arm SMMUv3's identification registers (Arm IHI 0070).
public struct SMMUv3Registers: Sendable, Hashable {
    /// `IOMMU_HW_INFO_ARM_SMMUV3_*` flags.
    public var flags: UInt32
    /// IDR0-IDR5.
    public var idr: [UInt32]
    /// IIDR.
    public var iidr: UInt32
    /// AIDR.
    public var aidr: UInt32

    /// Creates the registers from the kernel's answer.
    public init(flags: UInt32, idr: [UInt32], iidr: UInt32, aidr: UInt32) {
        self.flags = flags
        self.idr = idr + [UInt32](repeating: 0, count: max(0, 6 - idr.count))
        self.iidr = iidr
        self.aidr = aidr
    }

    private func idr0(_ bit: UInt32) -> Bool { idr[0] >> bit & 1 != 0 }

    /// S2P: stage-2 translation.
    public var stage2: Bool { idr0(0) }
    /// S1P: stage-1 translation.
    public var stage1: Bool { idr0(1) }
    /// Both stages: what a nesting parent needs.
    public var nesting: Bool { stage1 && stage2 }
    /// HTTU: 0 none, 1 access flag, 2 access and dirty flags.
    public var hardwareTranslationTableUpdate: UInt32 { (idr[0] >> 6) & 0x3 }
    /// ATS.
    public var ats: Bool { idr0(10) }
    /// PRI: page requests.
    public var pri: Bool { idr0(16) }
    /// OAS: the output address size in bits (IDR5).
    public var outputAddressBits: Int { [32, 36, 40, 42, 44, 48, 52, 56][Int(idr[5] & 0x7)] }

    /// The features, named.
    public var featureNames: [String] {
        let bits: [(UInt32, String)] = [(0, "stage 2"), (1, "stage 1"), (4, "coherent"), (5, "BTM"), (10, "ATS"),
                                        (12, "16-bit ASID"), (13, "MSI"), (16, "PRI"), (18, "16-bit VMID"), (19, "2-level CD")]
        var names = bits.filter { idr0($0.0) }.map(\.1)
        let httu = hardwareTranslationTableUpdate
        if httu != 0 { names.append(httu == 1 ? "HTTU access flag" : "HTTU access+dirty") }
        names.append("OAS \(outputAddressBits) bits")
        return names
    }
}

/// NVIDIA Tegra241 CMDQV's description.
public struct Tegra241CMDQVRegisters: Sendable, Hashable {
    /// Flags (none defined).
    public var flags: UInt32
    /// The CMDQV version.
    public var version: UInt8
    /// log2 of the virtual command queues per VINTF.
    public var log2VirtualCommandQueues: UInt8
    /// log2 of the virtual stream IDs per VINTF.
    public var log2VirtualSIDs: UInt8

    /// Creates the description from the kernel's answer.
    public init(flags: UInt32, version: UInt8, log2VirtualCommandQueues: UInt8, log2VirtualSIDs: UInt8) {
        self.flags = flags
        self.version = version
        self.log2VirtualCommandQueues = log2VirtualCommandQueues
        self.log2VirtualSIDs = log2VirtualSIDs
    }
}

/// AMD-Vi's extended feature registers (bits from `drivers/iommu/amd/amd_iommu_types.h`).
public struct AMDRegisters: Sendable, Hashable {
    /// EFR.
    public var extendedFeatures: UInt64
    /// EFR2.
    public var extendedFeatures2: UInt64

    /// Creates the registers from the kernel's answer.
    public init(extendedFeatures: UInt64, extendedFeatures2: UInt64) {
        self.extendedFeatures = extendedFeatures
        self.extendedFeatures2 = extendedFeatures2
    }

    private func efr(_ bit: UInt64) -> Bool { extendedFeatures >> bit & 1 != 0 }

    /// PPR: peripheral page requests.
    public var pageRequests: Bool { efr(1) }
    /// GT: guest translation (what a nested guest DTE needs).
    public var guestTranslation: Bool { efr(4) }
    /// GA: guest virtual APIC.
    public var guestVirtualAPIC: Bool { efr(7) }
    /// PASMAX: the PASID width in bits, when non-zero.
    public var pasidBits: Int? {
        let field = (extendedFeatures >> 32) & 0x1f
        return field > 0 ? Int(field) + 1 : nil
    }
    /// GIOSUP: guest I/O protection.
    public var guestIOProtection: Bool { efr(48) }
    /// HDSUP: host dirty tracking.
    public var hostDirty: Bool { efr(52) }

    /// The features, named.
    public var featureNames: [String] {
        var names: [String] = []
        if pageRequests { names.append("PPR (page requests)") }
        if guestTranslation { names.append("GT (guest translation)") }
        if guestVirtualAPIC { names.append("GA (guest virtual APIC)") }
        if let pasidBits { names.append("PASMAX \(pasidBits) bits") }
        if guestIOProtection { names.append("GIOSUP (guest I/O protection)") }
        if hostDirty { names.append("HDSUP (dirty tracking)") }
        return names
    }
}

/// The flags a paging HWPT is allocated with (`IOMMU_HWPT_ALLOC_*`).
public struct PagingHWPTFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    /// Creates the set from `IOMMU_HWPT_ALLOC_*` bits.
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// The HWPT can be the parent (second stage) of nested HWPTs.
    public static let nestParent = PagingHWPTFlags(rawValue: IOMMU_HWPT_ALLOC_NEST_PARENT)
    /// The HWPT tracks dirty pages.
    public static let dirtyTracking = PagingHWPTFlags(rawValue: IOMMU_HWPT_ALLOC_DIRTY_TRACKING)
    /// The HWPT can be attached to PASIDs as well as to the RID.
    public static let pasid = PagingHWPTFlags(rawValue: IOMMU_HWPT_ALLOC_PASID)
}

/// The vendor formats of a nested HWPT's user-owned table (`enum iommu_hwpt_data_type`).
public enum NestedHWPTFormat: Sendable, Hashable, CaseIterable {
    /// A VT-d first-stage table (`IOMMU_HWPT_DATA_VTD_S1`) on a nesting parent.
    case vtdStage1
    /// An SMMUv3 stream table entry (`IOMMU_HWPT_DATA_ARM_SMMUV3`) on a vIOMMU.
    case armSMMUv3
    /// An AMD guest device table entry (`IOMMU_HWPT_DATA_AMD_GUEST`) on a vIOMMU.
    case amdGuest
    /// The kernel selftest's nested data (`IOMMU_HWPT_DATA_SELFTEST`).
    case selftest

    /// The kernel's data type number.
    public var dataType: UInt32 {
        switch self {
        case .vtdStage1: IOMMU_HWPT_DATA_VTD_S1
        case .armSMMUv3: IOMMU_HWPT_DATA_ARM_SMMUV3
        case .amdGuest: IOMMU_HWPT_DATA_AMD_GUEST
        case .selftest: IOMMU_HWPT_DATA_SELFTEST
        }
    }
}

/// Which HWPTs a device can take, read from its hardware info, in the spirit of the
/// iommufd design: ask the devices, then allocate the format wanted (the kernel refuses a
/// wrong guess; this says in advance what it would take).
public struct PageTableFormats: Sendable, Hashable {
    /// The IOMMU kind the answer comes from.
    public var kind: HardwareInfo.Kind
    /// The flags a paging HWPT may carry (none is always possible).
    public var pagingFlags: PagingHWPTFlags
    /// The formats of nested HWPTs on a nesting parent or a vIOMMU.
    public var nestedFormats: Set<NestedHWPTFormat>
    /// Whether the device takes PASIDs (its PASID width is not 0).
    public var takesPASIDs: Bool

    /// The formats for the device `info` describes. Dirty tracking follows the kernel's
    /// own answer (`IOMMU_HW_CAP_DIRTY_TRACKING`); nesting follows the vendor registers
    /// as the drivers read them (VT-d: scalable mode and NEST, intel/iommu.h:537-538;
    /// SMMUv3: both stages; AMD: guest translation).
    public init(_ info: HardwareInfo) {
        kind = info.kind
        takesPASIDs = info.maxPASIDLog2 > 0
        var flags: PagingHWPTFlags = []
        var nested: Set<NestedHWPTFormat> = []
        if info.capabilities.contains(.dirtyTracking) { flags.insert(.dirtyTracking) }
        switch info.vendor {
        case .intelVTd(let vtd):
            flags.insert(.pasid)
            if vtd.nestingCapable { flags.insert(.nestParent); nested.insert(.vtdStage1) }
        case .armSMMUv3(let smmu):
            flags.insert(.pasid)
            if smmu.nesting { flags.insert(.nestParent); nested.insert(.armSMMUv3) }
        case .tegra241CMDQV:
            flags.insert(.pasid)
        case .amd(let amd):
            flags.insert(.pasid)
            if amd.guestTranslation { flags.insert(.nestParent); nested.insert(.amdGuest) }
        case .selftest:
            flags.formUnion([.pasid, .nestParent])
            nested.insert(.selftest)
        case .none, .other:
            break
        }
        pagingFlags = flags
        nestedFormats = nested
    }

    /// What one HWPT can be for every device in `infos`: the flags and nested formats all
    /// of them take, or `nil` when they sit behind IOMMUs of different kinds or registers
    /// (different drivers or units: no one HWPT attaches to all of them).
    public static func shared(by infos: [HardwareInfo]) -> PageTableFormats? {
        guard let first = infos.first, infos.allSatisfy({ $0.kind == first.kind && $0.vendor == first.vendor }) else { return nil }
        var shared = PageTableFormats(first)
        for info in infos.dropFirst() {
            let formats = PageTableFormats(info)
            shared.pagingFlags.formIntersection(formats.pagingFlags)
            shared.nestedFormats.formIntersection(formats.nestedFormats)
            shared.takesPASIDs = shared.takesPASIDs && formats.takesPASIDs
        }
        return shared
    }
}
