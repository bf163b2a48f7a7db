import SystemPackage
import CIOMMUFD
import IOMMUFD
import PCIDatabase
import VFIO

/// The per-device checks D1-D12 and, with `--deep`, D13 (iommufd) or D14 (legacy)
/// (docs/probe-checks.md), one function per check.
struct DeviceChecks {
    let files: SystemFiles
    /// libpci for names and extended capabilities on a real machine.
    let library: LibPCI?

    /// Every PCI function bound to a VFIO driver (what `--device` defaults to).
    func vfioDevices() -> [PCIAddress] {
        (files.list("/sys/bus/pci/devices") ?? []).compactMap { name in
            guard let driver = files.linkName("/sys/bus/pci/devices/\(name)/driver"), driver.contains("vfio") else { return nil }
            return try? PCIAddress(parsing: name)
        }
    }

    /// What the checks of one device share: its address, sysfs directory, driver, group and cdev.
    struct Subject {
        let address: PCIAddress
        var device: String { address.description }
        var base: String { address.sysfsPath }
        let driver: String?
        var group: String = ""
        var cdev: String?
    }

    /// Runs D1-D12 (and D13 or D14 with `deep`) for one device, in order; D1 and D3 stop the
    /// rest when the device or its group is missing.
    func run(_ address: PCIAddress, deep: Bool, iommuPath: String, into report: inout ProbeReport) {
        var subject = Subject(address: address, driver: files.linkName(address.sysfsPath + "/driver"))
        guard identity(subject, into: &report) else { return }
        driverBinding(subject, into: &report)
        guard let group = membership(subject, into: &report) else { return }
        subject.group = group
        viability(subject, into: &report)
        dangerGuard(subject, into: &report)
        reservedRegions(subject, into: &report)
        subject.cdev = cdevNode(subject, into: &report)
        Holders(files: files).run(address, group: group, cdev: subject.cdev, into: &report)
        numaLocality(subject, into: &report)
        reset(subject, into: &report)
        sriov(subject, into: &report)
        ExtendedCapabilityCheck(files: files, library: library).run(address, into: &report)
        if deep {
            // The iommufd path when the kernel has it, otherwise the legacy group + type1 path.
            if VFIOPCIDevice.resolve(.automatic, iommuPath: iommuPath, system: files.system, environment: [:]) == .iommufdCdev && subject.cdev != nil {
                DeepProbe(files: files).run(address, iommuPath: iommuPath, into: &report)
            } else {
                LegacyDeepProbe(files: files).run(address, into: &report)
            }
        }
    }

    /// D1: the device exists; its ids, class and (with libpci) names. `false` when it does not exist.
    func identity(_ subject: Subject, into report: inout ProbeReport) -> Bool {
        let (device, base) = (subject.device, subject.base)
        guard files.text(base + "/vendor") != nil else {
            report.add("D1", .fail, "no such PCI device", evidence: "\(base) does not exist", fix: "list devices with `lspci -D`", device: device)
            return false
        }
        let vendor = files.text(base + "/vendor") ?? "?", product = files.text(base + "/device") ?? "?", classCode = files.text(base + "/class") ?? "?"
        var name = ""
        if let library, let vendorID = UInt16(vendor.dropFirst(2), radix: 16), let deviceID = UInt16(product.dropFirst(2), radix: 16) {
            let names = [library.vendorName(vendorID), library.deviceName(vendor: vendorID, device: deviceID)].compactMap { $0 }
            if !names.isEmpty { name = " " + names.joined(separator: " ") }
            if let classID = UInt32(classCode.dropFirst(2), radix: 16), let className = library.className(classID) { name += " (\(className))" }
        }
        report.add("D1", .info, "\(vendor.dropFirst(2)):\(product.dropFirst(2)) class \(classCode)\(name)",
                   evidence: "\(base)/{vendor,device,class}" + (library == nil ? "" : "; names from pci.ids via libpci"), device: device)
        return true
    }

    /// D2: the driver, the override and a driverctl file.
    func driverBinding(_ subject: Subject, into report: inout ProbeReport) {
        let (device, base, driver) = (subject.device, subject.base, subject.driver)
        let override = files.text(base + "/driver_override") ?? "(absent)"
        let persisted = files.text("/etc/driverctl.d/pci-\(device)")
        report.add("D2", driver?.contains("vfio") == true ? .pass : .warn, "driver \(driver ?? "none")",
                   evidence: "driver_override=\(override); driverctl: \(persisted ?? "none")",
                   fix: driver?.contains("vfio") == true ? nil : "bind it to vfio-pci: `echo vfio-pci > \(base)/driver_override; echo \(device) > /sys/bus/pci/drivers_probe` (or `driverctl set-override \(device) vfio-pci`)",
                   device: device)
    }

    /// D3: the IOMMU group and unit; `nil` (a FAIL) when the device has no group.
    func membership(_ subject: Subject, into report: inout ProbeReport) -> String? {
        let (device, base) = (subject.device, subject.base)
        guard let group = files.linkName(base + "/iommu_group") else {
            report.add("D3", .fail, "not in an IOMMU group: no DMA translation for this device", evidence: "\(base)/iommu_group is missing",
                       fix: "enable the IOMMU (see S6/S7)", device: device)
            return nil
        }
        report.add("D3", .pass, "IOMMU group \(group), unit \(files.linkName(base + "/iommu") ?? "?")", evidence: "\(base)/iommu_group -> \(group)", device: device)
        return group
    }

    /// D4: the group is viable (the kernel's driver_managed_dma rule), or which members block it.
    func viability(_ subject: Subject, into report: inout ProbeReport) {
        let (device, group) = (subject.device, subject.group)
        let members = files.list("/sys/kernel/iommu_groups/\(group)/devices") ?? []
        let blockers = (try? PCIFunction(subject.address, system: files.system))?.groupBlockers(system: files.system) ?? []
        if blockers.isEmpty {
            report.add("D4", .pass, "group \(group) is viable", evidence: "members: \(members.joined(separator: " ")); type \(files.text("/sys/kernel/iommu_groups/\(group)/type") ?? "?")", device: device)
        } else {
            let described = blockers.map { "\($0.address) (\($0.driver ?? "?"))" }
            report.add("D4", .fail, "group \(group) is not viable: \(described.joined(separator: ", ")) still on a host driver",
                       evidence: "members: \(members.joined(separator: " "))",
                       fix: "unbind them too: " + blockers.map { "driverctl set-override \($0.address) vfio-pci" }.joined(separator: "; "), device: device)
        }
    }

    /// D5: nothing in the group backs a mounted filesystem or a routed interface.
    func dangerGuard(_ subject: Subject, into report: inout ProbeReport) {
        let (device, group) = (subject.device, subject.group)
        let hazards = DangerGuard(system: files.system).hazards(of: subject.address)
        if hazards.isEmpty {
            report.add("D5", .pass, "nothing in group \(group) backs a mounted filesystem or a routed interface",
                       evidence: "/sys/block/*, /proc/self/mountinfo, /sys/bus/pci/devices/*/net, /proc/net/route", device: device)
        } else {
            report.add("D5", .fail, "refusing: the host uses group \(group): " + hazards.map(\.description).joined(separator: "; "),
                       evidence: "/sys/block/*, /proc/self/mountinfo, /sys/bus/pci/devices/*/net, /proc/net/route",
                       fix: "unmount the filesystems / take the interface down first, or pick another device (`iommufd-probe bind --force` overrides)", device: device)
        }
    }

    /// D6: the group's reserved IOVA regions.
    func reservedRegions(_ subject: Subject, into report: inout ProbeReport) {
        let reserved = (files.text("/sys/kernel/iommu_groups/\(subject.group)/reserved_regions") ?? "").split(separator: "\n").joined(separator: "; ")
        report.add("D6", .info, "reserved IOVA regions", evidence: reserved.isEmpty ? "(none)" : reserved, device: subject.device)
    }

    /// D7: the VFIO cdev and its device node; returns the cdev's name (`vfioN`) when there is one.
    func cdevNode(_ subject: Subject, into report: inout ProbeReport) -> String? {
        let (device, base, group, driver) = (subject.device, subject.base, subject.group, subject.driver)
        let cdev = (files.list(base + "/vfio-dev") ?? []).first { $0.hasPrefix("vfio") }
        if let cdev {
            let node = "/dev/vfio/devices/\(cdev)"
            let exists = (files.list("/dev/vfio/devices") ?? []).contains(cdev)
            report.add("D7", exists ? .pass : .fail, exists ? "cdev \(node)" : "cdev \(node) has no device node",
                       evidence: "\(base)/vfio-dev/\(cdev), major:minor \(files.text(base + "/vfio-dev/\(cdev)/dev") ?? "?"); legacy group node /dev/vfio/\(group)",
                       fix: exists ? nil : "is devtmpfs mounted on /dev? create it with mknod from the major:minor", device: device)
        } else {
            report.add("D7", driver?.contains("vfio") == true ? .warn : .info, "no VFIO cdev",
                       evidence: "\(base)/vfio-dev is missing", fix: driver?.contains("vfio") == true ? "the kernel lacks CONFIG_VFIO_DEVICE_CDEV: use the legacy group /dev/vfio/\(group)" : nil, device: device)
        }
        return cdev
    }

    /// D9: the device's NUMA node.
    func numaLocality(_ subject: Subject, into report: inout ProbeReport) {
        let base = subject.base
        let node = files.text(base + "/numa_node") ?? "-1"
        report.add("D9", .info, node == "-1" ? "NUMA node unknown" : "NUMA node \(node)", evidence: "\(base)/numa_node = \(node); local_cpulist = \(files.text(base + "/local_cpulist") ?? "?")", device: subject.device)
    }

    /// D10: the reset methods.
    func reset(_ subject: Subject, into report: inout ProbeReport) {
        let (device, base) = (subject.device, subject.base)
        if let methods = files.text(base + "/reset_method"), !methods.isEmpty {
            report.add("D10", .pass, "reset: \(methods)", evidence: "\(base)/reset_method", device: device)
        } else {
            report.add("D10", .warn, "no reset method", evidence: "\(base)/reset_method is empty or missing",
                       fix: "the device cannot be reset between users; a driver must bring it to a known state itself", device: device)
        }
    }

    /// D11: SR-IOV: a VF (and whether its PF's VF token is needed), or a PF's VF counts.
    func sriov(_ subject: Subject, into report: inout ProbeReport) {
        let (device, base) = (subject.device, subject.base)
        if let physicalFunction = files.linkName(base + "/physfn") {
            let pfDriver = files.linkName(base + "/physfn/driver") ?? "none"
            report.add("D11", pfDriver.contains("vfio") ? .warn : .info, "a virtual function of \(physicalFunction)",
                       evidence: "physfn driver \(pfDriver)", fix: pfDriver.contains("vfio") ? "its PF is on vfio-pci: binding needs the VF token (VFIO_DEVICE_BIND_FLAG_TOKEN)" : nil, device: device)
        } else if let total = files.text(base + "/sriov_totalvfs") {
            report.add("D11", .info, "SR-IOV physical function: \(files.text(base + "/sriov_numvfs") ?? "0") of \(total) VFs enabled", evidence: "\(base)/sriov_*", device: device)
        }
    }
}

/// D13: claims the device for a moment (open, bind, attach, ranges, hardware info).
struct DeepProbe {
    let files: SystemFiles

    func run(_ address: PCIAddress, iommuPath: String, into report: inout ProbeReport) {
        let device = address.description
        do {
            let owned = try VFIOPCIDevice(address, path: .only(.iommufdCdev), iommuPath: iommuPath, system: files.system, environment: [:])
            guard case .iommufd(let ioas) = owned.addressSpace, let deviceID = owned.device.deviceID,
                  let hwpt = owned.device.attachedPageTable else { return }
            let ranges = try ioas.iovaRanges()
            let info = try owned.device.info()
            report.add("D13", .pass, "bound and attached: device id \(deviceID.rawValue), HWPT \(hwpt.rawValue); \(info.regionCount) regions, \(info.interruptCount) interrupt types, reset \(info.canReset ? "yes" : "no")",
                       evidence: "IOVA ranges \(ranges.ranges.map(\.description).joined(separator: " ")) alignment \(ranges.alignment)", device: device)
            hardwareInfo(iommufd: ioas.iommufd, deviceID: deviceID.rawValue, device: device, into: &report)
        } catch {
            report.add("D13", .fail, "claiming the device failed at \(error.operation.name)", evidence: error.description,
                       fix: [error.explanation?.meaning, error.explanation?.fix].compactMap { $0 }.joined(separator: " "), device: device)
        }
    }

    /// `IOMMU_GET_HW_INFO`, decoded by the core (``HardwareInfo``): the vendor registers,
    /// the generic capability bits, and which HWPTs the device can take.
    func hardwareInfo(iommufd: IOMMUFD, deviceID: UInt32, device: String, into report: inout ProbeReport) {
        let info: HardwareInfo
        do throws(IOMMUError) {
            info = try iommufd.hardwareInfo(of: DeviceID(rawValue: deviceID))
        } catch {
            report.add("D13", .warn, "IOMMU_GET_HW_INFO failed", evidence: error.description, device: device)
            return
        }
        var vendor: [String] = []
        var evidence = ""
        switch info.vendor {
        case .intelVTd(let vtd):
            vendor = ["VT-d: " + vtd.featureNames.joined(separator: ", ")]
            evidence = "cap_reg 0x\(String(vtd.capability, radix: 16)) ecap_reg 0x\(String(vtd.extendedCapability, radix: 16))"
        case .armSMMUv3(let smmu):
            vendor = ["SMMUv3: " + smmu.featureNames.joined(separator: ", ")]
            evidence = "IDR0-5 " + smmu.idr.map { "0x" + String($0, radix: 16) }.joined(separator: " ") + " IIDR 0x\(String(smmu.iidr, radix: 16))"
        case .amd(let amd):
            vendor = ["AMD-Vi: " + amd.featureNames.joined(separator: ", ")]
            evidence = "EFR 0x\(String(amd.extendedFeatures, radix: 16)) EFR2 0x\(String(amd.extendedFeatures2, radix: 16))"
        default:
            break
        }
        var generic: [String] = []
        if info.capabilities.contains(.dirtyTracking) { generic.append("dirty tracking") }
        if info.capabilities.contains(.pasidExecute) { generic.append("PASID exec") }
        if info.capabilities.contains(.pasidPrivileged) { generic.append("PASID privileged") }
        if info.capabilities.contains(.atsNotSupported) { generic.append("ATS not supported") }
        var summary = "hardware info type \(info.kind.rawValue), max PASID bits \(info.maxPASIDLog2)"
        summary += generic.isEmpty ? "" : " (" + generic.joined(separator: ", ") + ")"
        if !vendor.isEmpty { summary += "; " + vendor.joined(separator: "; ") }
        let formats = PageTableFormats(info)
        var hwpts = ["paging"]
        if formats.pagingFlags.contains(.nestParent) { hwpts.append("nesting parent") }
        if formats.pagingFlags.contains(.dirtyTracking) { hwpts.append("dirty tracking") }
        if formats.takesPASIDs { hwpts.append("PASID") }
        summary += "; HWPTs: " + hwpts.joined(separator: ", ")
        report.add("D13", .info, summary, evidence: evidence.isEmpty ? "capabilities 0x\(String(info.capabilities.rawValue, radix: 16))" : evidence, device: device)
    }
}
