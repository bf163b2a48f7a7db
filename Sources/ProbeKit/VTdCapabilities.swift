import IOMMUFD

/// Decodes Intel VT-d capability and extended capability registers into named
/// features (bit positions from the VT-d specification, as `drivers/iommu/intel/iommu.h` uses them).
public struct VTdCapabilities {
    let files: SystemFiles

    /// Names of the features set in `cap` and `ecap`, plus the decoded widths (the core's
    /// ``VTdRegisters`` decoding, which `IOMMU_GET_HW_INFO` answers also go through).
    public static func describe(cap: UInt64, ecap: UInt64) -> [String] {
        VTdRegisters(flags: 0, capability: cap, extendedCapability: ecap).featureNames
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
