import IOMMUFD
public import PCIDatabase
import VFIO

/// Runs the checks and collects the findings.
public struct Probe {
    /// Where sysfs, procfs and the device nodes are read: ``LinuxSystem`` or a MockKernel.
    public var system: any SystemInterface
    /// The iommufd device node the system checks open, `/dev/iommu` by default.
    public var iommuPath: String
    /// libpci for device names and extended capabilities; `nil` decodes config space read
    /// through `system` instead (a fake tree).
    public var library: LibPCI?

    /// Creates a probe over `system`, opening `iommuPath` for the iommufd checks and using `library` (libpci) for device
    /// names and extended capabilities when given.
    public init(system: any SystemInterface = LinuxSystem(), iommuPath: String = "/dev/iommu", library: LibPCI? = nil) {
        self.system = system
        self.iommuPath = iommuPath
        self.library = library
    }

    /// The system checks, then the device checks for `devices` (every device bound to a
    /// VFIO driver when empty). `deep` claims each device briefly (D13).
    public func run(devices: [PCIAddress] = [], deep: Bool = false) -> ProbeReport {
        let files = SystemFiles(system: system)
        var report = ProbeReport()
        SystemChecks(files: files, iommuPath: iommuPath).run(into: &report)
        let deviceChecks = DeviceChecks(files: files, library: library)
        let targets = devices.isEmpty ? deviceChecks.vfioDevices() : devices
        if targets.isEmpty {
            report.add("D0", .info, "no device bound to vfio-pci", evidence: "no /sys/bus/pci/devices/*/driver points at a vfio driver",
                       fix: "name one with --device dddd:bb:dd.f; bind one with `driverctl set-override dddd:bb:dd.f vfio-pci` or driver_override + drivers_probe")
        }
        for address in targets {
            deviceChecks.run(address, deep: deep, iommuPath: iommuPath, into: &report)
        }
        return report
    }
}
