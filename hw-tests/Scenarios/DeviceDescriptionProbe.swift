import CIOMMUFD
import IOMMUFD
import SystemPackage
import VFIO

/// Everything a VFIO device describes about itself through the cdev: the device info, every
/// region (flags, size, sparse areas, MSI-X mappability, type) and every interrupt index
/// (flags, count), one line each, `key value`. The same function runs on the kernel (the VM
/// lane) and on MockKernel, so the two descriptions can be compared line by line.
public enum DeviceDescriptionProbe {
    /// The description of the device at `address` through `system`.
    public static func lines(_ address: PCIAddress, system: any SystemInterface) throws -> [String] {
        let owned = try VFIOPCIDevice(address, path: .only(.iommufdCdev), system: system)
        let device = owned.device
        let info = try device.info()
        var lines = ["info flags=0x\(String(info.flags, radix: 16)) regions=\(info.regionCount) irqs=\(info.interruptCount)"]
        for index in 0..<info.regionCount {
            do throws(IOMMUError) {
                let region = try device.region(index)
                var line = "region \(index) flags=0x\(String(region.flags, radix: 16)) size=0x\(String(region.size, radix: 16))"
                if let areas = region.capabilities.sparseAreas {
                    line += " sparse=" + areas.map { "0x\(String($0.offset, radix: 16))+0x\(String($0.size, radix: 16))" }.joined(separator: ",")
                }
                if region.capabilities.msixMappable { line += " msix-mappable" }
                if let type = region.capabilities.type { line += " type=\(type.type)/\(type.subtype)" }
                lines.append(line)
            } catch {
                lines.append("region \(index) \(ErrnoName.name(of: error.errno))")
            }
        }
        for kind in PCIInterruptKind.allCases where kind.rawValue < info.interruptCount {
            do throws(IOMMUError) {
                let interrupt = try device.interruptInfo(kind)
                lines.append("irq \(kind) flags=0x\(String(interrupt.flags, radix: 16)) count=\(interrupt.count)")
            } catch {
                lines.append("irq \(kind) \(ErrnoName.name(of: error.errno))")
            }
        }
        return lines
    }
}
