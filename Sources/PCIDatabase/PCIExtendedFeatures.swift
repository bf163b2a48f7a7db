/// What a function's PCI Express extended capabilities say about its use with an
/// IOMMU: PASID (shared virtual addressing), ATS (device-side translation caching), PRI
/// (page faults), and ACS (isolation, which decides how big IOMMU groups are).
public struct PCIExtendedFeatures: Sendable, Hashable, Codable {
    /// PASID capability (0x1b).
    public struct PASID: Sendable, Hashable, Codable {
        /// Max PASID width in bits (PASIDs are 0..<2^width).
        public var width: Int
        /// The function supports the Execute Requested attribute with a PASID (PASID Capability register bit 1).
        public var executePermission: Bool
        /// The function supports the Privileged Mode Requested attribute (PASID Capability register bit 2).
        public var privilegedMode: Bool
        /// PASID Enable is set in the PASID Control register (bit 0): the function may send PASID prefixes now.
        public var enabled: Bool

        /// Creates a PASID description from the max PASID width in bits, the Execute and Privileged Mode
        /// support bits, and whether PASID is enabled.
        public init(width: Int, executePermission: Bool, privilegedMode: Bool, enabled: Bool) {
            self.width = width
            self.executePermission = executePermission
            self.privilegedMode = privilegedMode
            self.enabled = enabled
        }
    }

    /// ACS capability (0x0d): the capability and control registers.
    public struct ACS: Sendable, Hashable, Codable {
        /// The ACS Capability register (offset 4): which ACS controls the function implements.
        public var capability: UInt16
        /// The ACS Control register (offset 6): which ACS controls are enabled.
        public var control: UInt16

        /// Creates an ACS description from the raw ACS Capability and ACS Control registers.
        public init(capability: UInt16, control: UInt16) {
            self.capability = capability
            self.control = control
        }

        /// Source validation, translation blocking, P2P request and completion redirect,
        /// upstream forwarding: the bits the kernel wants for isolation (`REQ_ACS_FLAGS`).
        public static let isolationBits: UInt16 = 0x1 | 0x2 | 0x4 | 0x8 | 0x10

        /// Whether the bits needed for isolation are enabled.
        public var isolates: Bool { control & capability & Self.isolationBits == capability & Self.isolationBits && capability & 0x1c != 0 }
    }

    /// The PASID capability, or `nil` when the function has none.
    public var pasid: PASID?
    /// Whether the function has an ATS capability (0x0f): it can cache IOMMU translations itself.
    public var ats: Bool
    /// Whether the function has a PRI capability (0x13): it can request pages on an I/O page fault.
    public var pri: Bool
    /// The ACS capability, or `nil` when the function has none (as most single-function endpoints).
    public var acs: ACS?

    /// Creates the feature set from its parts; the defaults describe a function with none of them.
    public init(pasid: PASID? = nil, ats: Bool = false, pri: Bool = false, acs: ACS? = nil) {
        self.pasid = pasid
        self.ats = ats
        self.pri = pri
        self.acs = acs
    }

    /// Extended capability ids (PCIe base spec; `PCI_EXT_CAP_ID_*`).
    public enum CapabilityID {
        /// Access Control Services (`PCI_EXT_CAP_ID_ACS`).
        public static let acs: UInt16 = 0x0d
        /// Address Translation Services (`PCI_EXT_CAP_ID_ATS`).
        public static let ats: UInt16 = 0x0f
        /// Page Request Interface (`PCI_EXT_CAP_ID_PRI`).
        public static let pri: UInt16 = 0x13
        /// Process Address Space ID (`PCI_EXT_CAP_ID_PASID`).
        public static let pasid: UInt16 = 0x1b
    }

    /// Decodes the extended capability list of a full (4096-byte) config space.
    /// Returns `nil` when the bytes stop at 256 (not PCI Express, or an unprivileged
    /// read, which sysfs cuts short).
    public init?(configuration bytes: [UInt8]) {
        guard bytes.count >= 4096 else { return nil }
        func word(_ offset: Int) -> UInt16 { UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8 }
        func long(_ offset: Int) -> UInt32 { UInt32(word(offset)) | UInt32(word(offset + 2)) << 16 }
        self.init()
        var offset = 0x100
        var visited = 0
        while offset >= 0x100, offset + 4 <= bytes.count, visited < 480 {
            let header = long(offset)
            if header == 0 || header == 0xffff_ffff { break }
            visited += 1
            let id = UInt16(header & 0xffff)
            switch id {
            case CapabilityID.pasid where offset + 8 <= bytes.count:
                let capability = word(offset + 4)
                let control = word(offset + 6)
                pasid = PASID(width: Int((capability >> 8) & 0x1f), executePermission: capability & 0x2 != 0,
                              privilegedMode: capability & 0x4 != 0, enabled: control & 0x1 != 0)
            case CapabilityID.ats: ats = true
            case CapabilityID.pri: pri = true
            case CapabilityID.acs where offset + 8 <= bytes.count:
                acs = ACS(capability: word(offset + 4), control: word(offset + 6))
            default: break
            }
            offset = Int(header >> 20) & 0xffc
        }
    }
}
