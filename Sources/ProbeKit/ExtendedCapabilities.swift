import IOMMUFD
import PCIDatabase
import VFIO

/// D12: PASID, ATS, PRI and ACS of the function, and ACS on every bridge above it.
struct ExtendedCapabilityCheck {
    let files: SystemFiles
    /// libpci on a real machine; `nil` reads config space through the system seam
    /// (MockKernel's fake tree) and decodes it with the same rules.
    let library: LibPCI?

    func features(of address: PCIAddress) -> PCIExtendedFeatures? {
        if let library { return library.extendedFeatures(of: address) }
        guard let bytes = try? files.system.readFile(address.sysfsPath + "/config") else { return nil }
        return PCIExtendedFeatures(configuration: bytes)
    }

    func run(_ address: PCIAddress, into report: inout ProbeReport) {
        let device = address.description
        let source = library == nil ? "\(address.sysfsPath)/config" : "libpci pci_find_cap(PCI_CAP_EXTENDED) on \(address.sysfsPath)/config"
        guard let features = features(of: address) else {
            report.add("D12", .skip, "extended capabilities not read", evidence: "\(source): only the first 256 bytes (or 64, unprivileged) are readable",
                       fix: "run as root: sysfs gives unprivileged readers the first 64 bytes of config space only", device: device)
            return
        }
        var parts: [String] = []
        if let pasid = features.pasid {
            parts.append("PASID \(pasid.width) bits\(pasid.executePermission ? ", exec" : "")\(pasid.privilegedMode ? ", privileged" : "")\(pasid.enabled ? ", enabled" : "")")
        } else {
            parts.append("no PASID")
        }
        parts.append(features.ats ? "ATS" : "no ATS")
        parts.append(features.pri ? "PRI" : "no PRI")
        parts.append(features.acs.map { "ACS cap 0x\(String($0.capability, radix: 16)) ctrl 0x\(String($0.control, radix: 16))" } ?? "no ACS")
        report.add("D12", .info, parts.joined(separator: "; "), evidence: source, device: device)

        let bridges = UpstreamPath.bridges(of: address, system: files.system)
        guard !bridges.isEmpty else { return }
        var weak: [String] = []
        let described = bridges.map { bridge -> String in
            guard let bridgeFeatures = self.features(of: bridge) else { return "\(bridge): unreadable" }
            guard let acs = bridgeFeatures.acs else { weak.append(bridge.description); return "\(bridge): no ACS" }
            if !acs.isolates { weak.append(bridge.description) }
            return "\(bridge): ACS ctrl 0x\(String(acs.control, radix: 16))\(acs.isolates ? " (isolating)" : " (not isolating)")"
        }
        report.add("D12", weak.isEmpty ? .info : .warn,
                   weak.isEmpty ? "every bridge above isolates (ACS)" : "bridges without isolating ACS: \(weak.joined(separator: ", ")); devices below them share a group",
                   evidence: described.joined(separator: "; "),
                   fix: weak.isEmpty ? nil : "expect larger IOMMU groups; move the card to a slot behind an ACS-capable root port", device: device)
    }
}
