public import Logging
import Foundation
public import IOMMUFD
import SystemPackage

/// A PCI device claimed for a user-space driver, paired with the address space its DMA
/// goes through: the one-call entry point (libvfn's `vfio_pci_open`).
///
/// The path is chosen as libvfn chooses it: iommufd when `/dev/iommu` and
/// `/dev/vfio/devices` exist, otherwise the legacy group + type1 container.
/// `IOMMUFD_FORCE_LEGACY=1` in the environment forces the legacy path.
public final class VFIOPCIDevice: Sendable {
    /// The device (regions, BARs, config space, interrupts, reset).
    public let device: VFIODevice
    /// The context the device belongs to, shared with the other devices claimed into it.
    public let context: DMAContext
    /// The PCI function.
    public let address: PCIAddress

    /// Where its DMA addresses are translated (its context's address space).
    public var addressSpace: DMAAddressSpace { context.addressSpace }

    /// Which path a device is opened through.
    public enum PathChoice: Sendable, Hashable {
        /// iommufd if the kernel has it, else legacy; `IOMMUFD_FORCE_LEGACY=1` forces legacy.
        case automatic
        /// Exactly this path.
        case only(VFIODevice.Path)
    }

    /// The environment variable that forces the legacy path.
    public static let forceLegacyVariable = "IOMMUFD_FORCE_LEGACY"

    /// Claims `address` (bound to vfio-pci) and gives it a fresh, empty address space of its
    /// own (a new ``DMAContext``). To share one address space, make a ``DMAContext`` and
    /// ``DMAContext/claim(_:virtualFunctionToken:)`` each device into it.
    ///
    /// - Throws: the first failing step's error (open, bind, attach, group viability,
    ///   container setup); whatever was opened before it is closed again.
    public convenience init(
        _ address: PCIAddress, path choice: PathChoice = .automatic, virtualFunctionToken: VFToken? = nil,
        iommuPath: String = "/dev/iommu", system: any SystemInterface = LinuxSystem(),
        environment: [String: String] = ProcessInfo.processInfo.environment, logger: Logger = IOMMUFD.silentLogger
    ) throws(IOMMUError) {
        let context = try DMAContext(path: choice, iommuPath: iommuPath, system: system, environment: environment, logger: logger)
        try self.init(address, in: context, virtualFunctionToken: virtualFunctionToken)
    }

    /// Claims `address` into `context` (see ``DMAContext/claim(_:virtualFunctionToken:)``).
    init(_ address: PCIAddress, in context: DMAContext, virtualFunctionToken: VFToken?) throws(IOMMUError) {
        self.address = address
        self.context = context
        self.device = try context.openDevice(address, virtualFunctionToken: virtualFunctionToken)
    }

    /// The path `choice` leads to on this machine.
    public static func resolve(
        _ choice: PathChoice, iommuPath: String = "/dev/iommu", system: any SystemInterface, environment: [String: String]
    ) -> VFIODevice.Path {
        switch choice {
        case .only(let path):
            return path
        case .automatic:
            if let force = environment[forceLegacyVariable], force == "1" || force.lowercased() == "yes" || force.lowercased() == "true" {
                return .legacyGroup
            }
            let hasIOMMUFD = exists(iommuPath, system)
            let hasCdevs = (try? system.listDirectory("/dev/vfio/devices")) != nil
            return hasIOMMUFD && hasCdevs ? .iommufdCdev : .legacyGroup
        }
    }

    /// Whether a device node exists: opening it succeeds or fails for a reason other
    /// than `ENOENT`/`ENODEV` (a permission problem is reported later, by the real open).
    private static func exists(_ path: String, _ system: any SystemInterface) -> Bool {
        do {
            let fd = try system.open(path, flags: O_RDWR | O_CLOEXEC, mode: 0)
            try? system.close(fd)
            return true
        } catch {
            return error != .noSuchFileOrDirectory && error != .operationNotSupportedByDevice
        }
    }

    /// Which path the device was opened through.
    public var path: VFIODevice.Path { device.openedThrough }
}
