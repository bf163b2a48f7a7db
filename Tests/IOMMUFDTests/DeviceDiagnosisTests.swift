import Foundation
import IOMMUFD
import MockKernel
import PCIDatabase
import ProbeKit
import SystemPackage
import Testing
import VFIO

/// A 4096-byte PCI Express config space with PASID (20 bits, exec, privileged, enabled),
/// ATS, PRI and ACS (isolating) in its extended capability list.
func pasidCapableConfiguration(acsControl: UInt16 = 0x1d) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: 4096)
    func put16(_ value: UInt16, _ offset: Int) { bytes[offset] = UInt8(value & 0xff); bytes[offset + 1] = UInt8(value >> 8) }
    func header(_ id: UInt16, next: Int, at offset: Int) { put16(id, offset); put16(UInt16(1 | (next << 4)), offset + 2) }
    put16(0x8086, 0); put16(0x1592, 2)
    // A PCI Express capability in the standard list: libpci looks for extended capabilities only then.
    put16(0x0010, 0x06); bytes[0x34] = 0x40
    bytes[0x40] = 0x10; bytes[0x41] = 0; put16(0x0002, 0x42)
    header(0x1b, next: 0x110, at: 0x100)
    put16(20 << 8 | 0x2 | 0x4, 0x104)
    put16(0x1, 0x106)
    header(0x0f, next: 0x120, at: 0x110)
    header(0x13, next: 0x130, at: 0x120)
    header(0x0d, next: 0, at: 0x130)
    put16(0x1d, 0x134)
    put16(acsControl, 0x136)
    return bytes
}

@Suite("Device diagnosis: extended capabilities, danger guard, legacy deep probe, driver binding")
struct DeviceDiagnosisTests {
    func finding(_ report: ProbeReport, _ id: String, device: String) -> [ProbeReport.Finding] {
        report.findings.filter { $0.id == id && $0.device == device }
    }

    @Test("the decoder reads PASID width and modes, ATS, PRI and ACS; 256 bytes decode to nothing")
    func decoder() throws {
        let features = try #require(PCIExtendedFeatures(configuration: pasidCapableConfiguration()))
        #expect(features.pasid == PCIExtendedFeatures.PASID(width: 20, executePermission: true, privilegedMode: true, enabled: true))
        #expect(features.ats && features.pri)
        #expect(features.acs?.capability == 0x1d && features.acs?.isolates == true)
        #expect(PCIExtendedFeatures(configuration: [UInt8](repeating: 0, count: 256)) == nil)
        // A list that points at itself ends instead of looping.
        var looping = pasidCapableConfiguration()
        looping[0x132] = 0x01; looping[0x133] = 0x13
        #expect(PCIExtendedFeatures(configuration: looping)?.acs != nil)
    }

    @Test("libpci and our decoder agree on a PASID-capable function in a sysfs tree on disk")
    func libpciAgrees() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("iommufd-libpci-\(getpid())")
        defer { try? FileManager.default.removeItem(at: root) }
        let device = root.appendingPathComponent("devices/0000:00:02.0")
        try FileManager.default.createDirectory(at: device, withIntermediateDirectories: true)
        let bytes = pasidCapableConfiguration()
        try Data(bytes).write(to: device.appendingPathComponent("config"))
        for (name, value) in [("vendor", "0x8086"), ("device", "0x1592"), ("class", "0x020000"), ("irq", "0")] {
            try Data((value + "\n").utf8).write(to: device.appendingPathComponent(name))
        }
        let library = try #require(LibPCI(sysfsRoot: root.path))
        let viaLibPCI = try #require(library.extendedFeatures(of: PCIAddress(parsing: "0000:00:02.0")))
        #expect(viaLibPCI == PCIExtendedFeatures(configuration: bytes))
        #expect(library.vendorName(0x8086) == "Intel Corporation")
        #expect(library.className(0x020000) == "Ethernet controller")
        #expect(LibPCI(sysfsRoot: root.path + "/missing") == nil)
    }

    @Test("D12 on a PASID-capable device reports PASID, ATS, PRI and ACS; a bridge without ACS is a WARN")
    func pasidDevice() throws {
        var configuration = MockKernel.Configuration()
        configuration.addPCIDevice(.init(address: "0000:01:00.0", vendorID: 0x8086, deviceID: 0x1592, iommuGroup: 9))
        configuration.files["/sys/bus/pci/devices/0000:01:00.0/config"] = pasidCapableConfiguration()
        configuration.links["/sys/bus/pci/devices/0000:01:00.0"] = "../../../devices/pci0000:00/0000:00:1c.0/0000:01:00.0"
        var bridge = [UInt8](repeating: 0, count: 4096)
        bridge[0] = 0x86; bridge[1] = 0x80
        configuration.files["/sys/bus/pci/devices/0000:00:1c.0/config"] = bridge
        let report = Probe(system: MockKernel(configuration: configuration)).run(devices: [try PCIAddress(parsing: "0000:01:00.0")])
        let d12 = finding(report, "D12", device: "0000:01:00.0")
        #expect(d12.count == 2)
        #expect(d12.first?.summary.contains("PASID 20 bits, exec, privileged, enabled; ATS; PRI; ACS cap 0x1d") == true, "\(d12)")
        #expect(d12.last?.level == .warn && d12.last?.summary.contains("0000:00:1c.0") == true)
    }

    @Test("D5 refuses a group that backs a mounted filesystem or a routed interface")
    func dangerGuard() throws {
        var configuration = MockKernel.Configuration()
        configuration.addPCIDevice(.nvme())
        configuration.addPCIDevice(.init(address: "0000:00:05.0", vendorID: 0x8086, deviceID: 0x10d3, iommuGroup: 4, driver: "e1000e"))
        configuration.links["/sys/block/nvme0n1"] = "../devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1"
        configuration.files["/proc/self/mountinfo"] = Array("22 1 259:2 / / rw,relatime - ext4 /dev/nvme0n1p2 rw\n".utf8)
        configuration.files["/sys/bus/pci/devices/0000:00:05.0/net/enp0s5/address"] = Array("52:54:00:12:34:56\n".utf8)
        configuration.files["/proc/net/route"] = Array("Iface\tDestination\tGateway\nenp0s5\t00000000\t0202000A\n".utf8)
        let kernel = MockKernel(configuration: configuration)
        let hazards = DangerGuard(system: kernel).hazards(of: try PCIAddress(parsing: "0000:00:04.0"))
        #expect(hazards.map(\.description) == ["0000:00:04.0: backs mounted block device(s) nvme0n1p2",
                                               "0000:00:05.0: network interface enp0s5 has routes"])
        let report = Probe(system: kernel).run(devices: [try PCIAddress(parsing: "0000:00:04.0")])
        #expect(finding(report, "D5", device: "0000:00:04.0").first?.level == .fail)
    }

    @Test("--deep without /dev/iommu claims the device through the legacy group and container (D14)")
    func legacyDeepProbe() throws {
        let kernel = pciMachine { $0.iommuDevice = .absent }
        let report = Probe(system: kernel).run(devices: [edu], deep: true)
        let d14 = try #require(finding(report, "D14", device: edu.description).first, "\(report.humanReadable)")
        #expect(d14.level == .pass && d14.summary.contains("group 2 viable"), "\(d14)")
        #expect(d14.evidence.contains("[0x0, 0xfedfffff]"))
        #expect(finding(report, "D13", device: edu.description).isEmpty)
        #expect(kernel.leaks.isEmpty)
    }

    @Test("--deep on iommufd binds, attaches and decodes the intel-iommu registers GET_HW_INFO returns (D13)")
    func deepProbe() throws {
        let kernel = pciMachine()
        let report = Probe(system: kernel).run(devices: [edu], deep: true)
        let d13 = finding(report, "D13", device: edu.description)
        #expect(d13.first?.level == .pass && d13.first?.evidence.contains("[0x0, 0xfedfffff]") == true, "\(d13)")
        #expect(d13.last?.summary.contains("VT-d: IR interrupt-remapping, MGAW 39-bit") == true, "\(d13)")
        #expect(kernel.leaks.isEmpty)
    }

    @Test("SMMUv3 IDR0/IDR5 and AMD EFR bits get their names")
    func otherIOMMUs() {
        // IDR0 of a stage-1+2 SMMU with ATS, PRI, MSI, coherent walks and HTTU A+D; IDR5 OAS 48 bits.
        let smmu = SMMUv3Registers(flags: 0, idr: [0b1 | 0b10 | 1 << 4 | 2 << 6 | 1 << 10 | 1 << 13 | 1 << 16, 0, 0, 0, 0, 5], iidr: 0, aidr: 0).featureNames
        #expect(smmu == ["stage 2", "stage 1", "coherent", "ATS", "MSI", "PRI", "HTTU access+dirty", "OAS 48 bits"])
        #expect(AMDRegisters(extendedFeatures: 1 << 1 | 1 << 52 | 15 << 32, extendedFeatures2: 0).featureNames == ["PPR (page requests)", "PASMAX 16 bits", "HDSUP (dirty tracking)"])
    }

    @Test("S10 decodes an AMD-Vi unit's extended features")
    func amdFeatures() {
        var configuration = MockKernel.Configuration()
        configuration.files["/sys/class/iommu/ivhd0/amd-iommu/features"] = Array("0x246577efa2254afa\n".utf8)
        let report = Probe(system: MockKernel(configuration: configuration)).run()
        let s10 = report.findings.first { $0.id == "S10" }
        #expect(s10?.summary.contains("PPR (page requests)") == true && s10?.summary.contains("GT (guest translation)") == true, "\(String(describing: s10))")
        #expect(s10?.summary.contains("PASMAX") == true)
    }
}

@Suite("Driver binding (driver_override, unbind, drivers_probe, driverctl) on MockKernel")
struct DriverBindingTests {
    static func hostMachine() -> MockKernel {
        var configuration = MockKernel.Configuration()
        configuration.addPCIDevice(.init(address: "0000:00:03.0", vendorID: 0x8086, deviceID: 0x10d3, iommuGroup: 3, driver: "e1000e"))
        return MockKernel(configuration: configuration)
    }

    @Test("bind moves a NIC to vfio-pci (cdev and group nodes appear) and unbind gives it back to e1000e")
    func roundTrip() throws {
        let kernel = Self.hostMachine()
        let binding = DriverBinding(system: kernel)
        let address = try PCIAddress(parsing: "0000:00:03.0")
        #expect((try? kernel.listDirectory("/dev/vfio/devices")) == nil)
        let bound = try binding.bind(address, persist: true)
        #expect(bound.previousDriver == "e1000e" && bound.driver == "vfio-pci")
        #expect(bound.steps.first == "echo vfio-pci > /sys/bus/pci/devices/0000:00:03.0/driver_override")
        #expect(try kernel.listDirectory("/dev/vfio/devices") == ["vfio0"])
        #expect(String(decoding: try kernel.readFile("/etc/driverctl.d/pci-0000:00:03.0"), as: UTF8.self) == "vfio-pci\n")
        // The device is now usable through VFIO.
        do {
            let owned = try VFIOPCIDevice(address, system: kernel, environment: [:])
            #expect(try owned.device.readConfiguration(UInt16.self, at: 0) == 0x8086)
            // vfio-pci does not let go while the device is open.
            #expect(throws: DriverBinding.BindingError.self) { try binding.unbind(address) }
        }
        let unbound = try binding.unbind(address)
        #expect(unbound.previousDriver == "vfio-pci" && unbound.driver == "e1000e")
        #expect((try? kernel.readFile("/etc/driverctl.d/pci-0000:00:03.0")) == nil)
        #expect((try? kernel.listDirectory("/dev/vfio/devices")) == nil)
        #expect(kernel.leaks.isEmpty)
    }

    @Test("bind refuses a device whose group backs a mounted filesystem unless forced")
    func refusesMountedDisk() throws {
        var configuration = MockKernel.Configuration()
        configuration.addPCIDevice(.init(address: "0000:00:04.0", vendorID: 0x1b36, deviceID: 0x0010, iommuGroup: 4, driver: "nvme"))
        configuration.links["/sys/block/nvme0n1"] = "../devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1"
        configuration.files["/proc/self/mountinfo"] = Array("22 1 259:2 / / rw - ext4 /dev/nvme0n1p1 rw\n".utf8)
        let kernel = MockKernel(configuration: configuration)
        let binding = DriverBinding(system: kernel)
        let address = try PCIAddress(parsing: "0000:00:04.0")
        do {
            try binding.bind(address)
            Issue.record("bound a disk with a mounted filesystem")
        } catch {
            guard case .refused(let hazards) = error else { Issue.record("\(error)"); return }
            #expect(hazards.count == 1 && "\(error)".contains("--force"))
        }
        #expect(binding.currentDriver(of: address) == "nvme")
        #expect(try binding.bind(address, force: true).driver == "vfio-pci")
    }

    @Test("bind of a device that does not exist says so")
    func missingDevice() throws {
        let binding = DriverBinding(system: Self.hostMachine())
        #expect(throws: DriverBinding.BindingError.self) { try binding.bind(PCIAddress(parsing: "0000:00:1f.0")) }
    }
}
