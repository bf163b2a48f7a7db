extension MockKernel {
    /// A PCI function in the modelled machine: what sysfs shows of it, its config space
    /// with a capability list, its memory BARs, interrupts and reset, and (when bound to
    /// vfio-pci) its VFIO group node and device cdev.
    public struct PCIDevice: Sendable, Hashable {
        /// `dddd:bb:dd.f`.
        public var address: String
        /// The PCI Vendor ID (config offset 0x00, sysfs `vendor`).
        public var vendorID: UInt16
        /// The PCI Device ID (config offset 0x02, sysfs `device`).
        public var deviceID: UInt16
        /// The 24-bit class code (base class, subclass, programming interface).
        public var classCode: UInt32
        /// Its IOMMU group; `nil` when no IOMMU covers the device.
        public var iommuGroup: Int?
        /// The bound driver (`vfio-pci`, `nvme`, `e1000e`...), `nil` for none.
        public var driver: String?
        /// The driver the kernel binds on `drivers_probe` without an override (`nil`: none matches).
        public var hostDriver: String?
        /// The sizes of BAR0...BAR5 (0: not implemented).
        public var barSizes: [UInt64]
        /// The BARs (0-5) that decode I/O ports rather than memory: readable and writable
        /// through the descriptor, never mappable.
        public var ioBARs: Set<Int>
        /// The expansion ROM BAR's size (0: none); its region reports this size, read-only.
        public var romSize: UInt64
        /// The configuration space's size: 4096 for a PCI Express function whose extended
        /// space answers, else 256 (the kernel's `pdev->cfg_size`, the config region's size).
        public var configurationSize: Int
        /// MSI vectors (0: no MSI capability).
        public var msiVectors: UInt32
        /// MSI-X vectors (0: no MSI-X capability); the table sits at the start of ``msixBAR``.
        public var msixVectors: UInt32
        /// The BAR index (0-5) that holds the MSI-X table (and, in this model, its PBA).
        public var msixBAR: Int
        /// Whether the device has a legacy interrupt pin.
        public var hasINTx: Bool
        /// Whether a function reset exists (`VFIO_DEVICE_FLAGS_RESET`, sysfs `reset_method`).
        public var resetMethod: String?
        /// `numa_node` in sysfs (-1: none).
        public var numaNode: Int
        /// Reserved IOVA regions of the device's group (the x86 MSI window by default).
        public var reservedRegions: [ClosedRange<UInt64>]
        /// The IOMMU's input address width for this device's domain.
        public var addressWidth: Int
        /// Whether the IOMMU unit above the function tracks dirty pages: a VT-d in scalable
        /// mode with second-stage access/dirty bits (SLADS, SMPWC), as on recent Intel
        /// servers. QEMU 7.2's intel-iommu does not (the default), so only a test that plays
        /// such a machine sets it; then the function's DMA writes set dirty bits in a
        /// dirty-tracking HWPT it is attached to.
        public var iommuTracksDirty = false
        /// The PASID width the IOMMU reports for the function (`out_max_pasid_log2`): 0 for a
        /// function without a PASID capability or behind an IOMMU without PASID support (every
        /// QEMU 7.2 preset); a test playing a PASID-capable machine sets it.
        public var pasidWidth = 0
        /// Whether no IOMMU translates the function (`dev->iommu` is NULL): on vfio-pci, with
        /// `noIOMMUEnabled`, it is a no-IOMMU cdev (`noiommu-vfioN`, vfio_main.c:324-339), its
        /// DMA reaches physical addresses, and the iommufd gives it a software table only.
        public var withoutIOMMU = false
        /// Whether the function has ATS and PRI, so that its IOMMU can report its page faults
        /// to user space (intel-iommu enables IOPF only then, intel/iommu.c:3492-3499; none of
        /// QEMU 7.2's functions has it): a HWPT with a fault queue attaches, and the function's
        /// DMA to an IOVA nothing maps (``MockKernel/pciDeviceWrite(_:iova:bytes:)``) queues a
        /// page request instead of failing.
        public var supportsPageRequests = false

        /// Creates a function at `address` (`dddd:bb:dd.f`) with the given IDs. The defaults describe an unclassified
        /// device (class 0x00ff00) on vfio-pci, in no IOMMU group, with a 4 KiB BAR0, one MSI vector, INTx and FLR,
        /// no NUMA node, the x86 MSI window reserved and a 48-bit IOVA space. `barSizes` is padded with zeros (or cut)
        /// to six BARs; `hostDriver` defaults to `driver` unless that is vfio-pci. No I/O BARs, no ROM, 256 bytes
        /// of configuration space unless said otherwise.
        public init(
            address: String, vendorID: UInt16, deviceID: UInt16, classCode: UInt32 = 0x00ff00,
            iommuGroup: Int? = nil, driver: String? = "vfio-pci", hostDriver: String? = nil, barSizes: [UInt64] = [0x1000],
            ioBARs: Set<Int> = [], romSize: UInt64 = 0, configurationSize: Int = 256, msiVectors: UInt32 = 1, msixVectors: UInt32 = 0, msixBAR: Int = 0, hasINTx: Bool = true,
            resetMethod: String? = "flr", numaNode: Int = -1,
            reservedRegions: [ClosedRange<UInt64>] = [0xfee0_0000...0xfeef_ffff], addressWidth: Int = 48
        ) {
            self.address = address
            self.vendorID = vendorID
            self.deviceID = deviceID
            self.classCode = classCode
            self.iommuGroup = iommuGroup
            self.driver = driver
            self.hostDriver = hostDriver ?? (driver == "vfio-pci" ? nil : driver)
            self.barSizes = Array((barSizes + Array(repeating: 0, count: 6)).prefix(6))
            self.ioBARs = ioBARs
            self.romSize = romSize
            self.configurationSize = configurationSize
            self.msiVectors = msiVectors
            self.msixVectors = msixVectors
            self.msixBAR = msixBAR
            self.hasINTx = hasINTx
            self.resetMethod = resetMethod
            self.numaNode = numaNode
            self.reservedRegions = reservedRegions
            self.addressWidth = addressWidth
        }

        /// QEMU's `edu` teaching device (1234:11e8): one 1 MiB BAR, MSI, INTx, no reset. The QEMU
        /// presets sit behind QEMU 7.2's intel-iommu, whose domains take 39-bit IOVAs (MGAW 39).
        public static func edu(address: String = "0000:00:02.0", group: Int = 2) -> PCIDevice {
            PCIDevice(address: address, vendorID: 0x1234, deviceID: 0x11e8, iommuGroup: group,
                      barSizes: [0x10_0000], msiVectors: 1, resetMethod: nil, addressWidth: qemuIOMMUAddressWidth)
        }

        /// QEMU 7.2's intel-iommu input address width (MGAW 39, `cap_reg` 0xd2008c22260206).
        public static let qemuIOMMUAddressWidth = 39

        /// An Intel 82574L (e1000e) as QEMU 7.2 models it on q35 (as the VM lane's kernel reports it): memory
        /// BAR0 and BAR1, a 32-byte I/O BAR2, MSI-X with 5 vectors in BAR3, a 256 KiB option ROM, 4 KiB of
        /// PCI Express configuration space.
        public static func e1000e(address: String = "0000:00:03.0", group: Int = 3) -> PCIDevice {
            PCIDevice(address: address, vendorID: 0x8086, deviceID: 0x10d3, classCode: 0x020000, iommuGroup: group,
                      hostDriver: "e1000e", barSizes: [0x20000, 0x20000, 0x20, 0x4000], ioBARs: [2], romSize: 0x40000,
                      configurationSize: 4096, msiVectors: 1, msixVectors: 5, msixBAR: 3, resetMethod: "pm",
                      addressWidth: qemuIOMMUAddressWidth)
        }

        /// An NVMe controller (1b36:0010, QEMU's): MSI-X with 65 vectors in BAR0, a 1 MiB controller
        /// memory buffer in BAR 2 (the VM lane's `cmb_size_mb=1`), 4 KiB of PCI Express configuration space.
        public static func nvme(address: String = "0000:00:04.0", group: Int = 4) -> PCIDevice {
            PCIDevice(address: address, vendorID: 0x1b36, deviceID: 0x0010, classCode: 0x010802, iommuGroup: group,
                      hostDriver: "nvme", barSizes: [0x4000, 0, 0x10_0000], configurationSize: 4096, msiVectors: 0, msixVectors: 65, msixBAR: 0,
                      resetMethod: "flr", addressWidth: qemuIOMMUAddressWidth)
        }

        /// The PCI capabilities' positions in the mock's config space.
        static let msiCapabilityOffset = 0x40
        static let msixCapabilityOffset = 0x60

        /// The power-on config space: header, BARs, and a capability list with MSI and MSI-X.
        var initialConfiguration: [UInt8] {
            var bytes = [UInt8](repeating: 0, count: configurationSize)
            func put16(_ value: UInt16, _ offset: Int) { bytes[offset] = UInt8(value & 0xff); bytes[offset + 1] = UInt8(value >> 8) }
            func put32(_ value: UInt32, _ offset: Int) { put16(UInt16(value & 0xffff), offset); put16(UInt16(value >> 16), offset + 2) }
            put16(vendorID, 0x00)
            put16(deviceID, 0x02)
            bytes[0x08] = 0x10
            bytes[0x09] = UInt8(classCode & 0xff)
            bytes[0x0a] = UInt8((classCode >> 8) & 0xff)
            bytes[0x0b] = UInt8((classCode >> 16) & 0xff)
            for (index, size) in barSizes.enumerated() where size > 0 {
                put32(ioBARs.contains(index) ? 0xc000 &+ UInt32(index) << 8 | 1 : 0xfe00_0000 &+ UInt32(index) << 20, 0x10 + 4 * index)
            }
            if romSize > 0 { put32(0xfd00_0000, 0x30) }
            put16(vendorID, 0x2c)
            put16(deviceID, 0x2e)
            bytes[0x3d] = hasINTx ? 1 : 0
            var capabilities: [(offset: Int, id: UInt8)] = []
            if msiVectors > 0 { capabilities.append((Self.msiCapabilityOffset, 0x05)) }
            if msixVectors > 0 { capabilities.append((Self.msixCapabilityOffset, 0x11)) }
            if let first = capabilities.first {
                put16(0x0010, 0x06)  // status: capability list
                bytes[0x34] = UInt8(first.offset)
            }
            for (index, capability) in capabilities.enumerated() {
                bytes[capability.offset] = capability.id
                bytes[capability.offset + 1] = index + 1 < capabilities.count ? UInt8(capabilities[index + 1].offset) : 0
                if capability.id == 0x05 {
                    let multiple = UInt16(max(0, Int(msiVectors).trailingZeroBitCount))
                    put16(1 << 7 | multiple << 1, capability.offset + 2)  // 64-bit, multiple message capable
                } else {
                    put16(UInt16(msixVectors - 1), capability.offset + 2)
                    put32(UInt32(msixBAR), capability.offset + 4)          // table at offset 0 of the BAR
                    put32(0x800 | UInt32(msixBAR), capability.offset + 8)  // PBA at 0x800
                }
            }
            return bytes
        }
    }
}

extension MockKernel.Configuration {
    /// Adds a PCI function and the sysfs entries a real machine shows for it: vendor,
    /// device, class, numa_node, reset_method, the driver and iommu_group links, the
    /// group's device list and reserved regions, and (bound to vfio-pci) `vfio-dev/vfioN`
    /// plus the `/dev/vfio` nodes.
    public mutating func addPCIDevice(_ device: MockKernel.PCIDevice) {
        let index = pciDevices.count
        pciDevices.append(device)
        let directory = "/sys/bus/pci/devices/\(device.address)"
        func hex(_ value: UInt32, _ width: Int) -> String {
            let digits = String(value, radix: 16)
            return "0x" + String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        files[directory + "/vendor"] = Array((hex(UInt32(device.vendorID), 4) + "\n").utf8)
        files[directory + "/device"] = Array((hex(UInt32(device.deviceID), 4) + "\n").utf8)
        files[directory + "/class"] = Array((hex(device.classCode, 6) + "\n").utf8)
        files[directory + "/numa_node"] = Array("\(device.numaNode)\n".utf8)
        files[directory + "/config"] = device.initialConfiguration
        if let method = device.resetMethod { files[directory + "/reset_method"] = Array((method + "\n").utf8) }
        files[directory + "/driver_override"] = Array("(null)\n".utf8)
        if let group = device.iommuGroup {
            links[directory + "/iommu_group"] = "../../../kernel/iommu_groups/\(group)"
            links["/sys/kernel/iommu_groups/\(group)/devices/\(device.address)"] = "../../../../devices/pci0000:00/\(device.address)"
            let regions = device.reservedRegions.map { region in
                "0x" + String(format16(region.lowerBound)) + " 0x" + String(format16(region.upperBound)) + " msi\n"
            }.joined()
            files["/sys/kernel/iommu_groups/\(group)/reserved_regions"] = Array(regions.utf8)
        }
        setDriver(device.driver, ofDeviceAt: index)
    }

    /// Binds function `index` to `driver` (or unbinds it, `nil`): the driver link, and for
    /// vfio-pci the cdev under `vfio-dev` with its `/dev/vfio/devices` node and the group node.
    mutating func setDriver(_ driver: String?, ofDeviceAt index: Int) {
        pciDevices[index].driver = driver
        let device = pciDevices[index]
        let directory = "/sys/bus/pci/devices/\(device.address)"
        links[directory + "/driver"] = driver.map { "../../../bus/pci/drivers/\($0)" }
        if let driver { files["/sys/bus/pci/drivers/\(driver)/bind"] = files["/sys/bus/pci/drivers/\(driver)/bind"] ?? [] }
        let onVFIO = driver == "vfio-pci"
        let cdev = (device.withoutIOMMU ? "noiommu-vfio" : "vfio") + "\(index)"
        files[directory + "/vfio-dev/\(cdev)/dev"] = onVFIO ? Array("511:\(index)\n".utf8) : nil
        files["/dev/vfio/devices/\(cdev)"] = onVFIO ? [] : nil
        if onVFIO { files["/dev/vfio/vfio"] = [] }
        if let group = device.iommuGroup {
            let anyOnVFIO = pciDevices.contains { $0.iommuGroup == group && $0.driver == "vfio-pci" }
            files["/dev/vfio/\(group)"] = anyOnVFIO ? [] : nil
        }
    }

    private func format16(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: max(0, 16 - digits.count)) + digits
    }
}
