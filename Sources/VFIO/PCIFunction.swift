public import IOMMUFD

/// What sysfs says about a PCI function (`/sys/bus/pci/devices/<address>`): identity,
/// driver, IOMMU group, VFIO cdev, NUMA node, reset methods and SR-IOV. Read through
/// the system seam, so MockKernel can present a fake tree.
public struct PCIFunction: Sendable, Hashable {
    /// The function's address, the name of its directory in `/sys/bus/pci/devices`.
    public var address: PCIAddress
    /// The PCI Vendor ID (sysfs `vendor`), e.g. 0x8086.
    public var vendorID: UInt16
    /// The PCI Device ID (sysfs `device`).
    public var deviceID: UInt16
    /// The 24-bit class code.
    public var classCode: UInt32
    /// The bound driver's name (`vfio-pci`, `nvme`...), `nil` when unbound.
    public var driver: String?
    /// `driver_override`, `nil` when unset.
    public var driverOverride: String?
    /// The IOMMU group, `nil` when no IOMMU translates for the function.
    public var iommuGroup: Int?
    /// The VFIO cdev name (`vfio3`) when bound to vfio-pci on a kernel with device cdevs.
    public var vfioCdev: String?
    /// `numa_node`; `nil` for -1 (unknown).
    public var numaNode: Int?
    /// `reset_method`, e.g. `["flr", "bus"]`; empty when the function cannot be reset.
    public var resetMethods: [String]
    /// For an SR-IOV VF: its PF.
    public var physicalFunction: PCIAddress?
    /// For an SR-IOV PF: VFs enabled and possible.
    public var virtualFunctions: SRIOVCounts?

    /// `sriov_numvfs` and `sriov_totalvfs`.
    public struct SRIOVCounts: Sendable, Hashable {
        /// VFs currently enabled (`sriov_numvfs`).
        public var enabled: Int
        /// VFs the PF can offer (`sriov_totalvfs`).
        public var total: Int
    }

    /// The cdev's device node, when there is one.
    public var cdevPath: String? { vfioCdev.map { "/dev/vfio/devices/" + $0 } }
    /// Whether vfio-pci (or a vfio variant driver) owns the function.
    public var isOnVFIO: Bool { driver?.contains("vfio") == true }

    /// Reads the function's sysfs directory.
    ///
    /// - Throws: `ENOENT` (against the read of `vendor`) when there is no such function.
    public init(_ address: PCIAddress, system: any SystemInterface = LinuxSystem()) throws(IOMMUError) {
        let base = address.sysfsPath
        func text(_ name: String) -> String? {
            guard let bytes = try? system.readFile(base + "/" + name) else { return nil }
            return SysfsText.trimmed(bytes)
        }
        func hex(_ name: String) -> UInt32? { text(name).flatMap { UInt32($0.hasPrefix("0x") ? String($0.dropFirst(2)) : $0, radix: 16) } }
        func linkName(_ name: String) -> String? { (try? system.readLink(base + "/" + name))?.split(separator: "/").last.map(String.init) }
        do { _ = try system.readFile(base + "/vendor") } catch {
            throw IOMMUError(.readFile, error, IOMMUErrorContext(path: base + "/vendor"))
        }
        self.address = address
        vendorID = UInt16(truncatingIfNeeded: hex("vendor") ?? 0xffff)
        deviceID = UInt16(truncatingIfNeeded: hex("device") ?? 0xffff)
        classCode = hex("class") ?? 0
        driver = linkName("driver")
        let override = text("driver_override")
        driverOverride = override == "(null)" || override?.isEmpty == true ? nil : override
        iommuGroup = linkName("iommu_group").flatMap { Int($0) }
        vfioCdev = (try? system.listDirectory(base + "/vfio-dev"))?.first { $0.hasPrefix("vfio") }
        numaNode = text("numa_node").flatMap { Int($0) }.flatMap { $0 < 0 ? nil : $0 }
        resetMethods = text("reset_method")?.split(separator: " ").map(String.init) ?? []
        physicalFunction = linkName("physfn").flatMap { try? PCIAddress(parsing: $0) }
        if let total = text("sriov_totalvfs").flatMap({ Int($0) }) {
            virtualFunctions = SRIOVCounts(enabled: text("sriov_numvfs").flatMap { Int($0) } ?? 0, total: total)
        }
    }

    /// The other functions of its IOMMU group, with their drivers, and whether the group
    /// is viable: every member on vfio-pci, pci-stub, pcieport or no driver.
    /// `system` is the one the function was read through.
    public func groupMembers(system: any SystemInterface) -> (members: [PCIFunction], viable: Bool) {
        guard let iommuGroup, let names = try? system.listDirectory("/sys/kernel/iommu_groups/\(iommuGroup)/devices") else {
            return ([self], true)
        }
        let members = names.compactMap { name -> PCIFunction? in
            guard let address = try? PCIAddress(parsing: name) else { return nil }
            return try? PCIFunction(address, system: system)
        }
        return (members, !members.contains { $0.blocksGroup })
    }

    /// Whether a host driver owns the function, which makes its group unusable for VFIO.
    public var blocksGroup: Bool {
        guard let driver else { return false }
        return !GroupViability.allows(driver: driver)
    }

    /// The functions that block the group: members on a host driver.
    /// `system` is the one the function was read through.
    public func groupBlockers(system: any SystemInterface) -> [PCIFunction] {
        groupMembers(system: system).members.filter(\.blocksGroup)
    }
}
