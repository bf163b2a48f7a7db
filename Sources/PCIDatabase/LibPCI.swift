import IOMMUFDSystem
import CLibPCI
import VFIO
#if canImport(Glibc)
import Glibc
#endif

/// pciutils' libpci: the PCI ID database for names, and the extended capabilities as
/// libpci finds them in sysfs (`pci_find_cap(..., PCI_CAP_EXTENDED)`).
///
/// One value owns one `pci_access`; it is not shared between threads.
public final class LibPCI {
    private let access: UnsafeMutablePointer<pci_access>

    /// Opens libpci on the machine's sysfs, or on another root holding
    /// `devices/<address>/config` (a fake tree in tests). `nil` when that root has no
    /// `devices` directory (libpci would abort the process on it).
    public init?(sysfsRoot: String? = nil) {
        let root = sysfsRoot ?? "/sys/bus/pci"
        var information = stat()
        guard stat(root + "/devices", &information) == 0, information.st_mode & S_IFMT == S_IFDIR,
              let access = pci_alloc() else { return nil }
        self.access = access
        clibpci_quiet(access)
        access.pointee.method = clibpci_access_sysfs
        if let sysfsRoot { _ = clibpci_set_sysfs_root(access, sysfsRoot) }
        pci_init(access)
    }

    deinit {
        pci_cleanup(access)
    }

    /// The vendor's name from pci.ids, e.g. "Intel Corporation".
    public func vendorName(_ vendor: UInt16) -> String? {
        lookup { clibpci_vendor_name(access, $0, $1, UInt32(vendor)) }
    }

    /// The device's name from pci.ids, e.g. "82574L Gigabit Network Connection".
    public func deviceName(vendor: UInt16, device: UInt16) -> String? {
        lookup { clibpci_device_name(access, $0, $1, UInt32(vendor), UInt32(device)) }
    }

    /// The class's name, from the 16-bit base class and subclass, e.g. "Ethernet controller".
    public func className(_ classCode: UInt32) -> String? {
        lookup { clibpci_class_name(access, $0, $1, classCode >> 8) }
    }

    private func lookup(_ body: (UnsafeMutablePointer<CChar>, Int32) -> UnsafeMutablePointer<CChar>?) -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        return buffer.withUnsafeMutableBufferPointer { pointer in
            body(pointer.baseAddress!, Int32(pointer.count)).map { String(cString: $0) }
        }
    }

    /// The extended capabilities of a function, as libpci reads them. `nil` when libpci
    /// cannot see the extended config space (the function is not PCI Express, or the
    /// process may read only the first 64 bytes: unprivileged sysfs reads stop there).
    public func extendedFeatures(of address: PCIAddress) -> PCIExtendedFeatures? {
        guard let device = pci_get_dev(access, Int32(address.domain), Int32(address.bus), Int32(address.device), Int32(address.function)) else {
            return nil
        }
        defer { pci_free_dev(device) }
        _ = pci_fill_info(device, Int32(clibpci_fill_ident | clibpci_fill_class | clibpci_fill_caps | clibpci_fill_ext_caps))
        // A full read of the extended space is what makes the list trustworthy.
        var probe = [UInt8](repeating: 0, count: 4)
        guard probe.withUnsafeMutableBufferPointer({ pci_read_block(device, 0xffc, $0.baseAddress, 4) }) != 0 else { return nil }
        var features = PCIExtendedFeatures()
        if let pasid = pci_find_cap(device, UInt32(PCIExtendedFeatures.CapabilityID.pasid), clibpci_cap_extended) {
            let base = pasid.pointee.addr
            let capability = pci_read_word(device, Int32(base) + 4)
            let control = pci_read_word(device, Int32(base) + 6)
            features.pasid = .init(width: Int((capability >> 8) & 0x1f), executePermission: capability & 0x2 != 0,
                                   privilegedMode: capability & 0x4 != 0, enabled: control & 0x1 != 0)
        }
        features.ats = pci_find_cap(device, UInt32(PCIExtendedFeatures.CapabilityID.ats), clibpci_cap_extended) != nil
        features.pri = pci_find_cap(device, UInt32(PCIExtendedFeatures.CapabilityID.pri), clibpci_cap_extended) != nil
        if let acs = pci_find_cap(device, UInt32(PCIExtendedFeatures.CapabilityID.acs), clibpci_cap_extended) {
            features.acs = .init(capability: pci_read_word(device, Int32(acs.pointee.addr) + 4), control: pci_read_word(device, Int32(acs.pointee.addr) + 6))
        }
        return features
    }
}
