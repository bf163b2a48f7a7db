@_spi(Selftest) import IOMMUFD
import SystemPackage
import VFIO

/// Two selftest mock devices and a VFIO function on one IOAS, one step at a time: which
/// devices share a HWPT (the kernel reuses an automatic domain only for a device it is
/// compatible with), and the IOVA ranges after each step (each device's reserved regions
/// and aperture narrow them while it is attached). The same function runs on the kernel
/// (the VM lane) and on MockKernel, so the two can be compared line by line.
public enum SharedIOASProbe {
    /// The lines for the VFIO function at `address` through `system`.
    public static func lines(_ address: PCIAddress, system: any SystemInterface) throws -> [String] {
        let context = try DMAContext(path: .only(.iommufdCdev), system: system)
        guard case .iommufd(let ioas) = context.addressSpace else { return ["not an iommufd context"] }
        var lines: [String] = []
        func ranges(_ label: String) throws {
            let answer = try ioas.iovaRanges()
            lines.append(label + ": " + answer.ranges.map { "0x\(String($0.start.rawValue, radix: 16))-0x\(String($0.last.rawValue, radix: 16))" }.joined(separator: " "))
        }
        try ranges("empty")
        let first = try ioas.selftestAttachMockDomain()
        let second = try ioas.selftestAttachMockDomain()
        lines.append("two mock devices share one HWPT: \(first.hwptID == second.hwptID)")
        try ranges("two mock devices")
        do {
            let function = try context.claim(address)
            lines.append("the function shares the mock devices' HWPT: \(function.device.attachedPageTable?.rawValue == first.hwptID.rawValue)")
            try ranges("mock devices and the function")
        }
        try ranges("the function gone")
        try ioas.iommufd.destroy(first.selftestID)
        try ranges("one mock device")
        try ioas.iommufd.destroy(second.selftestID)
        try ranges("none")
        return lines
    }
}
