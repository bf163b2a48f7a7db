import IOMMUFD
import VFIO

/// D14: the legacy path claimed for a moment: group status, container API and type1v2,
/// then the container's IOVA ranges and mapping budget.
struct LegacyDeepProbe {
    let files: SystemFiles

    func run(_ address: PCIAddress, into report: inout ProbeReport) {
        let device = address.description
        do {
            let owned = try VFIOPCIDevice(address, path: .only(.legacyGroup), system: files.system, environment: [:])
            guard case .type1(let container) = owned.addressSpace, let group = owned.device.group else { return }
            let info = try container.info()
            let deviceInfo = try owned.device.info()
            let ranges = info.iovaRanges.map(\.description).joined(separator: " ")
            report.add("D14", .pass, "legacy path works: group \(group.number) viable, type1v2 set, \(deviceInfo.regionCount) regions",
                       evidence: "VFIO_IOMMU_GET_INFO: page sizes 0x\(String(info.pageSizes, radix: 16)); IOVA ranges \(ranges.isEmpty ? "(not reported)" : ranges); mappings left \(info.availableMappings.map(String.init) ?? "?")",
                       device: device)
        } catch {
            report.add("D14", .fail, "legacy path failed at \(error.operation.name)", evidence: error.description,
                       fix: [error.explanation?.meaning, error.explanation?.fix].compactMap { $0 }.joined(separator: " "), device: device)
        }
    }
}
