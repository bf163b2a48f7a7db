public import IOMMUFD
import VFIO

/// The bridges between a PCI function and its root complex, nearest first, from the
/// function's sysfs link (`/sys/bus/pci/devices/<address>` points into
/// `/sys/devices/pci<domain>:<bus>/<bridge>/.../<address>`). ACS on each of them decides
/// whether the IOMMU can isolate the function from its neighbours.
public enum UpstreamPath {
    /// The PCI addresses in the resolved sysfs link of `address`, without the function itself, nearest bridge
    /// first; empty when the link cannot be read (no such function) or the function sits on a root bus.
    public static func bridges(of address: PCIAddress, system: any SystemInterface) -> [PCIAddress] {
        guard let target = try? system.readLink(address.sysfsPath) else { return [] }
        let addresses = target.split(separator: "/").compactMap { try? PCIAddress(parsing: String($0)) }
        return Array(addresses.filter { $0 != address }.reversed())
    }
}
