import DMAMemory
import Foundation
@_spi(Selftest) import IOMMUFD
import Testing
import VFIO

/// Every hardware suite, one at a time: they share the device under test and the
/// process's memlock limit. Every test ends with the kernel-side leak check.
@Suite("Hardware", .serialized, .enabled(if: Hardware.enabled, Hardware.reason), .kernelLeakCheck)
struct HardwareSuite {}

/// The hardware tier's switches: the same public API against a real kernel. Opt in with
/// IOMMUFD_HW_TESTS=1 (the VM lane sets it); the device under test is
/// IOMMUFD_TEST_DEVICE=dddd:bb:dd.f, bound to vfio-pci.
enum Hardware {
    static let enabled = ProcessInfo.processInfo.environment["IOMMUFD_HW_TESTS"] == "1"
    static let reason: Comment = "set IOMMUFD_HW_TESTS=1 to run against a real /dev/iommu (see README: the VM lane)"

    /// The device under test, when one is named and parses.
    static let testDevice: PCIAddress? = {
        guard let text = ProcessInfo.processInfo.environment["IOMMUFD_TEST_DEVICE"] else { return nil }
        return try? PCIAddress(parsing: text)
    }()

    /// `vendor:device` of a PCI function, from sysfs.
    static func identity(of address: PCIAddress) -> (vendor: UInt16, device: UInt16)? {
        guard let function = try? PCIFunction(address) else { return nil }
        return (function.vendorID, function.deviceID)
    }

    /// The test device when it is QEMU's `edu` (1234:11e8) bound to vfio-pci.
    static let eduDevice: PCIAddress? = {
        guard enabled, let address = testDevice, let identity = identity(of: address),
              identity.vendor == 0x1234, identity.device == 0x11e8 else { return nil }
        return address
    }()
    static let eduReason: Comment = "needs IOMMUFD_TEST_DEVICE naming QEMU's edu device (1234:11e8) bound to vfio-pci; the VM lane sets it"

    /// Every PCI function bound to vfio-pci with this vendor:device id (the VM lane binds
    /// edu, e1000e and nvme).
    static func vfioFunctions(vendor: UInt16, device: UInt16) -> [PCIAddress] {
        guard enabled, let names = try? LinuxSystem().listDirectory("/sys/bus/pci/devices") else { return [] }
        return names.compactMap { try? PCIAddress(parsing: $0) }.filter { address in
            guard let function = try? PCIFunction(address) else { return false }
            return function.vendorID == vendor && function.deviceID == device && function.driver == "vfio-pci"
        }.sorted()
    }

    /// QEMU's e1000e (8086:10d3) and NVMe controller (1b36:0010), when bound to vfio-pci.
    static let e1000eDevice = vfioFunctions(vendor: 0x8086, device: 0x10d3).first
    /// The second e1000e, joined to the first by a QEMU hub in the VM lane.
    static let secondE1000EDevice = vfioFunctions(vendor: 0x8086, device: 0x10d3).dropFirst().first
    static let nvmeDevice = vfioFunctions(vendor: 0x1b36, device: 0x0010).first
    static let qemuDevicesReason: Comment = "needs QEMU's e1000e and nvme bound to vfio-pci; the VM lane provides them"

    /// Whether the legacy container is there (CONFIG_VFIO_CONTAINER).
    static let hasLegacyContainer = enabled && (try? LinuxSystem().listDirectory("/dev/vfio"))?.contains("vfio") == true

    /// Whether the process runs without capabilities, so memlock accounting applies.
    static let unprivileged = ProcessCapabilities()?.isUnprivileged ?? false
    static let unprivilegedReason: Comment = "memlock accounting needs an unprivileged process (CAP_IPC_LOCK bypasses it); the VM lane runs the suite through setpriv"

    /// The online NUMA nodes.
    static let numaNodes = NUMAPlacement.onlineNodes(system: LinuxSystem())

    /// Whether the kernel answers the selftest command (CONFIG_IOMMUFD_TEST).
    static let hasSelftest: Bool = {
        guard enabled, let iommufd = try? IOMMUFD(), let ioas = try? iommufd.allocateIOAS() else { return false }
        return (try? ioas.selftestAddReserved(start: IOVA(0x7000_0000), length: 4096)) != nil
    }()
    static let selftestReason: Comment = "the kernel was built without CONFIG_IOMMUFD_TEST (no mock domain); the VM lane's kernel has it"

    /// Whether this VM boot is the no-IOMMU one (`IOMMUFD_IOMMU_MODE=noiommu`, with
    /// vfio.enable_unsafe_noiommu_mode=1 and no IOMMU in the machine).
    static let noIOMMUMode = enabled && ProcessInfo.processInfo.environment["IOMMUFD_IOMMU_MODE"] == "noiommu"

    /// The intel-iommu variant this VM boot runs (`IOMMUFD_IOMMU_MODE`, set by hw-tests/vm/run
    /// from IOMMUFD_VM_IOMMU): `scalable` or `device-iotlb`; `nil` for the lane's own.
    static let intelIOMMUVariant: String? = ProcessInfo.processInfo.environment["IOMMUFD_IOMMU_MODE"].flatMap {
        ["scalable", "device-iotlb"].contains($0) ? $0 : nil
    }
}
