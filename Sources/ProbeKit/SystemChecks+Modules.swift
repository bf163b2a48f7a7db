import IOMMUFD

extension SystemChecks {
    // MARK: S10 AMD-Vi


    func amdUnits(into report: inout ProbeReport) {
        let units = (files.list("/sys/class/iommu") ?? []).filter { $0.hasPrefix("ivhd") }
        guard !units.isEmpty else {
            report.add("S10", .skip, "no AMD-Vi unit", evidence: "/sys/class/iommu has no ivhd* entry")
            return
        }
        for unit in units {
            let base = "/sys/class/iommu/\(unit)/amd-iommu"
            guard let text = files.text(base + "/features"), let features = UInt64(text.hasPrefix("0x") ? String(text.dropFirst(2)) : text, radix: 16) else {
                report.add("S10", .info, "\(unit): features unreadable", evidence: "\(base)/features")
                continue
            }
            let names = AMDRegisters(extendedFeatures: features, extendedFeatures2: 0).featureNames
            report.add("S10", .info, "\(unit): " + (names.isEmpty ? "no optional features" : names.joined(separator: ", ")),
                       evidence: "\(base)/features = \(text); cap = \(files.text(base + "/cap") ?? "?")")
        }
    }

    // MARK: S13 vfio-pci and type1 parameters

    func vfioParameters(into report: inout ProbeReport) {
        let names = ["enable_sriov", "disable_denylist", "disable_idle_d3", "nointxmask", "disable_vga"]
        let values = names.compactMap { name in files.text("/sys/module/vfio_pci/parameters/\(name)").map { "\(name)=\($0)" } }
        let limit = files.text("/sys/module/vfio_iommu_type1/parameters/dma_entry_limit")
        guard !values.isEmpty || limit != nil else {
            report.add("S13", .skip, "vfio-pci / vfio_iommu_type1 not loaded", evidence: "/sys/module/vfio_pci/parameters and /sys/module/vfio_iommu_type1/parameters are missing")
            return
        }
        report.add("S13", .info, "vfio-pci: \(values.isEmpty ? "no parameters" : values.joined(separator: " ")); type1 dma_entry_limit \(limit ?? "n/a")",
                   evidence: "/sys/module/vfio_pci/parameters/*, /sys/module/vfio_iommu_type1/parameters/dma_entry_limit")
    }
}
