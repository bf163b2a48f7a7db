import IOMMUFD
import MockKernel
import ProbeKit
import Testing
import VFIO

/// iommufd-probe's diagnosis against fake system trees (MockKernel presents the files),
/// one machine shape per test, as REFERENCE.md §3 describes them.
@Suite("iommufd-probe on fake machines")
struct ProbeTests {
    /// A fake sysfs/proc tree: a machine with an Intel IOMMU on and one edu device on vfio-pci in group 7.
    static func workingMachine() -> MockKernel.Configuration {
        var configuration = MockKernel.Configuration()
        configuration.memlockLimit = nil
        let files: [String: String] = [
            "/proc/sys/kernel/osrelease": "7.3.4\n",
            "/proc/cmdline": "root=/dev/vda intel_iommu=on\n",
            "/proc/cpuinfo": "processor\t: 0\nvendor_id\t: GenuineIntel\n",
            "/proc/interrupts": " 24: 0 IR-PCI-MSI-0000:00:02.0 0-edge vfio\n",
            "/proc/self/status": "Name:\tprobe\nCapEff:\t0000000000000000\nVmLck:\t0 kB\nVmPin:\t0 kB\n",
            "/sys/module/iommufd/parameters/allow_unsafe_interrupts": "N\n",
            "/sys/firmware/acpi/tables/DMAR": "",
            "/sys/class/iommu/dmar0/intel-iommu/cap": "d2008c22260206\n",
            "/sys/class/iommu/dmar0/intel-iommu/ecap": "f00f4a\n",
            "/sys/class/iommu/dmar0/intel-iommu/version": "1:0\n",
            "/sys/kernel/iommu_groups/7/type": "DMA\n",
            "/sys/kernel/iommu_groups/7/reserved_regions": "0x00000000fee00000 0x00000000feefffff msi\n",
            "/sys/bus/pci/devices/0000:00:02.0/vendor": "0x1234\n",
            "/sys/bus/pci/devices/0000:00:02.0/device": "0x11e8\n",
            "/sys/bus/pci/devices/0000:00:02.0/class": "0x00ff00\n",
            "/sys/bus/pci/devices/0000:00:02.0/driver_override": "vfio-pci\n",
            "/sys/bus/pci/devices/0000:00:02.0/numa_node": "-1\n",
            "/sys/bus/pci/devices/0000:00:02.0/reset_method": "flr\n",
            "/sys/bus/pci/devices/0000:00:02.0/vfio-dev/vfio0/dev": "247:0\n",
            "/dev/vfio/devices/vfio0": "",
            "/dev/vfio/vfio": "",
            "/dev/vfio/7": "",
        ]
        configuration.files = files.mapValues { Array($0.utf8) }
        configuration.links = [
            "/sys/bus/pci/devices/0000:00:02.0/driver": "../../../bus/pci/drivers/vfio-pci",
            "/sys/bus/pci/devices/0000:00:02.0/iommu_group": "../../../kernel/iommu_groups/7",
            "/sys/bus/pci/devices/0000:00:02.0/iommu": "../../virtual/iommu/dmar0",
            "/sys/kernel/iommu_groups/7/devices/0000:00:02.0": "../../../../devices/pci0000:00/0000:00:02.0",
        ]
        return configuration
    }

    func probe(_ configuration: MockKernel.Configuration, devices: [PCIAddress] = []) -> ProbeReport {
        Probe(system: MockKernel(configuration: configuration)).run(devices: devices)
    }

    func finding(_ report: ProbeReport, _ id: String) -> ProbeReport.Finding? {
        report.findings.first { $0.id == id }
    }

    @Test("a working machine: no FAIL, the device's group and cdev are found, VT-d decoded")
    func working() throws {
        let report = probe(Self.workingMachine())
        #expect(report.worst < .warn, "\(report.humanReadable)")
        #expect(finding(report, "S3")?.level == .pass)
        #expect(finding(report, "S7")?.level == .pass)
        #expect(finding(report, "S9")?.summary.contains("IR interrupt-remapping") == true)
        #expect(finding(report, "S9")?.summary.contains("MGAW 39-bit") == true)
        #expect(finding(report, "D3")?.summary.contains("group 7") == true)
        #expect(finding(report, "D4")?.level == .pass)
        #expect(finding(report, "D7")?.summary == "cdev /dev/vfio/devices/vfio0")
        #expect(report.exitCode == 0)
    }

    @Test("no IOMMU at all: S6 and S7 fail, with the firmware and command-line fixes")
    func noIOMMU() {
        var configuration = Self.workingMachine()
        configuration.files = configuration.files.filter { !$0.key.hasPrefix("/sys/firmware") && !$0.key.hasPrefix("/sys/class/iommu") && !$0.key.hasPrefix("/sys/kernel/iommu_groups") }
        configuration.links = [:]
        let report = probe(configuration)
        #expect(finding(report, "S6")?.level == .fail)
        #expect(finding(report, "S6")?.fix?.contains("BIOS") == true)
        #expect(finding(report, "S7")?.level == .fail)
        #expect(report.exitCode == 1)
    }

    @Test("IOMMU in the firmware but intel_iommu=on missing: S7 fails with the Intel fix")
    func intelIOMMUOff() {
        var configuration = Self.workingMachine()
        configuration.files = configuration.files.filter { !$0.key.hasPrefix("/sys/class/iommu") && !$0.key.hasPrefix("/sys/kernel/iommu_groups") }
        configuration.files["/proc/cmdline"] = Array("root=/dev/vda\n".utf8)
        let report = probe(configuration)
        #expect(finding(report, "S6")?.level == .pass)
        #expect(finding(report, "S7")?.level == .fail)
        #expect(finding(report, "S7")?.fix?.contains("intel_iommu=on") == true)
    }

    @Test("a Debian kernel without CONFIG_IOMMUFD: S2 and S3 fail and name the legacy backend")
    func debianKernel() {
        var configuration = Self.workingMachine()
        configuration.iommuDevice = .absent
        configuration.files["/boot/config-7.3.4"] = Array("CONFIG_VFIO=m\nCONFIG_VFIO_PCI=m\nCONFIG_VFIO_CONTAINER=y\n# CONFIG_IOMMUFD is not set\n".utf8)
        let report = probe(configuration)
        #expect(finding(report, "S2")?.level == .fail)
        #expect(finding(report, "S2")?.fix?.contains("legacy VFIO type1") == true)
        #expect(finding(report, "S3")?.level == .fail)
        #expect(finding(report, "S3")?.evidence.contains("errno 2") == true)
        #expect(report.exitCode == 1)
    }

    @Test("a group with a sibling on a host driver is not viable: D4 names the blocker")
    func nonViableGroup() throws {
        var configuration = Self.workingMachine()
        configuration.files["/sys/bus/pci/devices/0000:00:02.1/vendor"] = Array("0x8086\n".utf8)
        configuration.links["/sys/bus/pci/devices/0000:00:02.1/driver"] = "../../../bus/pci/drivers/e1000e"
        configuration.links["/sys/kernel/iommu_groups/7/devices/0000:00:02.1"] = "../../../../devices/pci0000:00/0000:00:02.1"
        let report = probe(configuration, devices: [try PCIAddress(parsing: "0000:00:02.0")])
        let viability = try #require(finding(report, "D4"))
        #expect(viability.level == .fail)
        #expect(viability.summary.contains("0000:00:02.1 (e1000e)"))
        #expect(viability.fix?.contains("driverctl set-override 0000:00:02.1 vfio-pci") == true)
    }

    @Test("a low memlock limit without CAP_IPC_LOCK warns with the limits.conf and systemd fixes")
    func lowMemlock() {
        var configuration = Self.workingMachine()
        configuration.memlockLimit = 8 << 20
        let report = probe(configuration)
        #expect(finding(report, "S14")?.level == .warn)
        #expect(finding(report, "S14")?.summary.contains("8192 KiB") == true)
        #expect(finding(report, "S14")?.fix?.contains("LimitMEMLOCK") == true)
        #expect(report.exitCode == 3)
    }

    @Test("unsafe interrupts enabled: S12 warns (CRITICAL)")
    func unsafeInterrupts() {
        var configuration = Self.workingMachine()
        configuration.files["/sys/module/iommufd/parameters/allow_unsafe_interrupts"] = Array("Y\n".utf8)
        let report = probe(configuration)
        #expect(finding(report, "S12")?.level == .warn)
        #expect(finding(report, "S12")?.summary.contains("CRITICAL") == true)
    }

    @Test("a device that does not exist is a FAIL for that device")
    func missingDevice() throws {
        let report = probe(Self.workingMachine(), devices: [try PCIAddress(parsing: "0000:09:00.0")])
        #expect(finding(report, "D1")?.level == .fail)
    }

    @Test("PCI addresses parse, print, and bad input is a clear error", arguments: [
        ("0000:00:02.0", "0000:00:02.0"), ("00:1f.7", "0000:00:1f.7"), ("abcd:ff:1f.7", "abcd:ff:1f.7"),
    ])
    func pciAddress(_ input: String, _ printed: String) throws {
        #expect(try PCIAddress(parsing: input).description == printed)
    }

    @Test("malformed PCI addresses are rejected", arguments: ["", "0000:00:02", "0000:00:20.0", "0000:00:02.8", "00000:00:02.0", "zz:00.0", "0000:00:02.0.1"])
    func badPCIAddress(_ input: String) {
        #expect(throws: PCIAddress.ParseError.malformed(input)) { try PCIAddress(parsing: input) }
    }

    @Test("VT-d registers decode into named features")
    func vtdDecode() {
        let features = VTdCapabilities.describe(cap: 0xd2008c22260206, ecap: 0xf00f4a)
        #expect(features.contains("IR interrupt-remapping"))
        #expect(features.contains("CM caching-mode (an emulated IOMMU: this is a VM)") == false)
        #expect(features.contains("MGAW 39-bit"))
        #expect(features.contains("SAGAW 39-bit/3-level"))
        let withPASID = VTdCapabilities.describe(cap: 1 << 7, ecap: (1 << 40) | (19 << 35) | (1 << 43))
        #expect(withPASID.contains("PASID") && withPASID.contains("PSS 20-bit PASIDs") && withPASID.contains("SMTS scalable-mode"))
        #expect(withPASID.contains("CM caching-mode (an emulated IOMMU: this is a VM)"))
    }
}
