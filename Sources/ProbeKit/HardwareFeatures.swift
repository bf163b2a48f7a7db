/// Names for the feature bits of IOMMUs other than VT-d (VT-d: ``VTdCapabilities``).
public enum HardwareFeatures {
    /// Bits of the AMD IOMMU extended feature register (`drivers/iommu/amd/amd_iommu_types.h`).
    public static func amd(_ features: UInt64) -> [String] {
        var names: [String] = []
        if features & (1 << 1) != 0 { names.append("PPR (page requests)") }
        if features & (1 << 4) != 0 { names.append("GT (guest translation)") }
        if features & (1 << 7) != 0 { names.append("GA (guest virtual APIC)") }
        let pasidBits = (features >> 32) & 0x1f
        if pasidBits > 0 { names.append("PASMAX \(pasidBits + 1) bits") }
        if features & (1 << 48) != 0 { names.append("GIOSUP (guest I/O protection)") }
        if features & (1 << 52) != 0 { names.append("HDSUP (dirty tracking)") }
        return names
    }

    /// SMMUv3 IDR0 features and IDR5's output address size (Arm IHI 0070).
    public static func smmuv3(idr0: UInt32, idr5: UInt32) -> [String] {
        let bits: [(Int, String)] = [(0, "stage 2"), (1, "stage 1"), (4, "coherent"), (5, "BTM"), (10, "ATS"),
                                     (12, "16-bit ASID"), (13, "MSI"), (16, "PRI"), (18, "16-bit VMID"), (19, "2-level CD")]
        var names = bits.filter { idr0 & (1 << UInt32($0.0)) != 0 }.map(\.1)
        let httu = (idr0 >> 6) & 0x3
        if httu != 0 { names.append(httu == 1 ? "HTTU access flag" : "HTTU access+dirty") }
        let outputBits = [32, 36, 40, 42, 44, 48, 52, 56]
        names.append("OAS \(outputBits[Int(idr5 & 0x7)]) bits")
        return names
    }
}
