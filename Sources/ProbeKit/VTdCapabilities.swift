/// Decodes Intel VT-d capability and extended capability registers into named
/// features (bit positions from the VT-d specification, as `drivers/iommu/intel/iommu.h` uses them).
public struct VTdCapabilities {
    let files: SystemFiles

    /// `(name, bit)` of the extended capability register.
    public static let extendedFeatures: [(String, Int)] = [
        ("DT device-TLB", 2), ("IR interrupt-remapping", 3), ("EIM x2APIC", 4), ("NEST nested", 26),
        ("PRS page-requests", 29), ("PASID", 40), ("SMTS scalable-mode", 43), ("SLTS second-level", 46), ("FLTS first-level", 47),
    ]

    /// Names of the features set in `cap` and `ecap`, plus the decoded widths.
    public static func describe(cap: UInt64, ecap: UInt64) -> [String] {
        var features = extendedFeatures.filter { ecap & (1 << UInt64($0.1)) != 0 }.map(\.0)
        let pasidSize = (ecap >> 35) & 0x1f
        if ecap & (1 << 40) != 0 { features.append("PSS \(pasidSize + 1)-bit PASIDs") }
        if cap & (1 << 7) != 0 { features.append("CM caching-mode (an emulated IOMMU: this is a VM)") }
        let mgaw = ((cap >> 16) & 0x3f) + 1
        features.append("MGAW \(mgaw)-bit")
        let sagaw = (cap >> 8) & 0x1f
        let levels = [(1, "39-bit/3-level"), (2, "48-bit/4-level"), (3, "57-bit/5-level")].filter { sagaw & (1 << UInt64($0.0)) != 0 }.map(\.1)
        features.append("SAGAW " + (levels.isEmpty ? "none" : levels.joined(separator: ",")))
        return features
    }

    func report(into report: inout ProbeReport) {
        let units = (files.list("/sys/class/iommu") ?? []).filter { $0.hasPrefix("dmar") }
        for unit in units {
            let base = "/sys/class/iommu/\(unit)/intel-iommu"
            guard let capText = files.text(base + "/cap"), let ecapText = files.text(base + "/ecap"),
                  let cap = UInt64(capText, radix: 16), let ecap = UInt64(ecapText, radix: 16) else { continue }
            report.add("S9", .info, "\(unit): VT-d \(files.text(base + "/version") ?? "?"): \(Self.describe(cap: cap, ecap: ecap).joined(separator: ", "))",
                       evidence: "\(base)/cap = \(capText), ecap = \(ecapText)")
        }
    }
}
