public import Logging
import Foundation
public import IOMMUFD

/// One IOMMU context that several devices join, so that they share one address space
/// (libvfn's `iommu_ctx`): one iommufd with one IOAS, or one legacy type1 container with
/// the groups of its devices. A buffer mapped once is then reachable by every device of
/// the context at the same IOVA, as a NIC and an NVMe controller sharing a buffer pool need.
///
/// ``VFIOPCIDevice/init(_:path:virtualFunctionToken:iommuPath:system:environment:logger:)``
/// keeps making one context per device; ``claim(_:virtualFunctionToken:)`` adds devices to
/// this one. The context lives as long as any of its devices.
// @safe: its raw storage (the locked device list) is used only behind this interface.
@safe
public final class DMAContext: Sendable {
    /// Where the devices' DMA addresses are translated.
    public let addressSpace: DMAAddressSpace
    /// The system the context talks to.
    public let system: any SystemInterface
    /// Where the context's objects log (teardown failures among them).
    public let logger: Logger
    /// The legacy path's open groups, by number: a group opens once, so two devices of one
    /// group share it.
    private let groups = unsafe LockedState([Int: VFIOGroup]())

    /// Opens a context on the path `choice` leads to (see ``VFIOPCIDevice/resolve(_:iommuPath:system:environment:)``):
    /// `/dev/iommu` and a fresh IOAS, or the legacy container.
    ///
    /// - Throws: the failing open or allocation; nothing is left open.
    public init(
        path choice: VFIOPCIDevice.PathChoice = .automatic, iommuPath: String = "/dev/iommu", system: any SystemInterface,
        environment: [String: String] = ProcessInfo.processInfo.environment, logger: Logger = IOMMUFD.silentLogger
    ) throws(IOMMUError) {
        self.system = system
        self.logger = logger
        switch VFIOPCIDevice.resolve(choice, iommuPath: iommuPath, system: system, environment: environment) {
        case .iommufdCdev:
            let iommufd = try IOMMUFD(path: iommuPath, system: system, logger: logger)
            addressSpace = .iommufd(try iommufd.allocateIOAS())
        case .legacyGroup:
            addressSpace = .type1(try VFIOContainer(system: system, logger: logger))
        }
    }

    /// Which VFIO path the context's devices use.
    public var path: VFIODevice.Path { addressSpace.path }

    /// Claims `address` (bound to vfio-pci) into this context: on iommufd its cdev is bound
    /// to the context's iommufd and attached to its IOAS; on the legacy path its group joins
    /// the context's container (once per group).
    ///
    /// - Throws: the first failing step's error; what it opened is closed again.
    public func claim(_ address: PCIAddress, virtualFunctionToken: VFToken? = nil) throws(IOMMUError) -> VFIOPCIDevice {
        try VFIOPCIDevice(address, in: self, virtualFunctionToken: virtualFunctionToken)
    }

    /// Opens `address`'s device on this context's path.
    func openDevice(_ address: PCIAddress, virtualFunctionToken: VFToken?) throws(IOMMUError) -> VFIODevice {
        switch addressSpace {
        case .iommufd(let ioas):
            let device = try VFIODevice(address, system: system, logger: logger)
            try device.bind(to: ioas.iommufd, virtualFunctionToken: virtualFunctionToken)
            try device.attach(to: ioas)
            return device
        case .type1(let container):
            let number = try VFIOGroup.number(of: address, system: system)
            let group = unsafe try groups.withLock { (groups) throws(IOMMUError) -> VFIOGroup in
                if let open = groups[number] { return open }
                let group = try VFIOGroup(number: number, container: container)
                groups[number] = group
                return group
            }
            return try VFIODevice(address, group: group, virtualFunctionToken: virtualFunctionToken)
        }
    }
}
