public import Logging
import CIOMMUFD
public import IOMMUFD
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A PCI device owned through VFIO: either its device cdev (`/dev/vfio/devices/vfioN`)
/// bound to an iommufd, the modern path, or a descriptor from its legacy group
/// (`VFIO_GROUP_GET_DEVICE_FD`) whose DMA goes through a type1 container.
///
/// Everything but binding and attaching (regions, BARs, config space, interrupts,
/// reset) is the same ioctl on either descriptor, so it is one type. ``VFIOPCIDevice``
/// chooses the path and pairs the device with its DMA address space.
///
/// Closing the device (when the value goes away) clears Bus Master Enable if this
/// value set it, so the device is quiesced before anything it could reach is freed;
/// then the descriptor is closed, which unbinds it (cdev) or releases it (group).
// @safe: its raw storage (the seam, the locked state) is used only behind this interface.
@safe
public final class VFIODevice: Sendable {
    /// How a device descriptor was obtained.
    public enum Path: String, Sendable, Hashable {
        /// `/dev/vfio/devices/vfioN` + `VFIO_DEVICE_BIND_IOMMUFD`.
        case iommufdCdev = "iommufd"
        /// `/dev/vfio/<group>` + `VFIO_GROUP_GET_DEVICE_FD`, DMA through a type1 container.
        case legacyGroup = "legacy-type1"
    }

    /// The device descriptor.
    public var fileDescriptor: FileDescriptor { FileDescriptor(rawValue: fd) }
    /// The raw descriptor, for the catalogue's calls.
    let fd: Int32
    /// The cdev path it was opened from, or `group N: <address>` on the legacy path.
    public let path: String
    /// Which path the descriptor came from.
    public let openedThrough: Path
    let system: any SystemInterface
    /// The system as the ioctl catalogue calls it.
    package let seam: IOCTLSeam
    /// Where the device, its BAR mappings and interrupt vectors log teardown failures.
    let logger: Logger
    /// The legacy group the descriptor came from (kept alive with the device).
    public let group: VFIOGroup?
    /// What changes while the device is open (binding, attachment, cached offsets), behind a
    /// lock so the device can be used from any thread.
    struct MutableState {
        var iommufd: IOMMUFD?
        var deviceID: IOMMUObjectID<DeviceObject>?
        var attachedPageTable: HWPTID?
        var attachedIOAS: IOAS?
        var configurationOffset: UInt64?
        var enabledBusMaster = false
        /// Whether the RID's page table takes PASIDs beside it (`nil`: not known, it was
        /// attached by raw id).
        var ridPASIDCompatible: Bool?
        /// The PASID leases alive on this device.
        var pasidLeases = 0
    }
    private let mutable = unsafe LockedState(MutableState())

    /// Runs `body` on the device's mutable state under its lock.
    func withMutableState<Result>(_ body: (inout MutableState) -> Result) -> Result {
        unsafe mutable.withLock { body(&$0) }
    }

    /// The iommufd the device is bound to, once bound.
    public internal(set) var iommufd: IOMMUFD? {
        get { unsafe mutable.withLock { $0.iommufd } }
        set { unsafe mutable.withLock { $0.iommufd = newValue } }
    }
    /// The device's id in that iommufd, once bound.
    public internal(set) var deviceID: IOMMUObjectID<DeviceObject>? {
        get { unsafe mutable.withLock { $0.deviceID } }
        set { unsafe mutable.withLock { $0.deviceID = newValue } }
    }
    /// The page table the device is attached to (an automatic or explicit HWPT), if any.
    public internal(set) var attachedPageTable: HWPTID? {
        get { unsafe mutable.withLock { $0.attachedPageTable } }
        set { unsafe mutable.withLock { $0.attachedPageTable = newValue } }
    }
    /// The IOAS the device is attached to, kept alive until the device is closed (an
    /// IOAS cannot be destroyed while a device uses it).
    public internal(set) var attachedIOAS: IOAS? {
        get { unsafe mutable.withLock { $0.attachedIOAS } }
        set { unsafe mutable.withLock { $0.attachedIOAS = newValue } }
    }
    /// Where config space starts in the device descriptor: asked once, then kept (it
    /// does not change while the descriptor is open).
    var configurationOffset: UInt64? {
        get { unsafe mutable.withLock { $0.configurationOffset } }
        set { unsafe mutable.withLock { $0.configurationOffset = newValue } }
    }
    /// Whether this value turned Bus Master Enable on (and so must turn it off).
    var enabledBusMaster: Bool {
        get { unsafe mutable.withLock { $0.enabledBusMaster } }
        set { unsafe mutable.withLock { $0.enabledBusMaster = newValue } }
    }

    /// Opens a VFIO device cdev read-write with `O_CLOEXEC`.
    public init(cdevPath: String, system: any SystemInterface = LinuxSystem(), logger: Logger = IOMMUFD.silentLogger) throws(IOMMUError) {
        self.logger = logger
        do {
            fd = try system.open(cdevPath, flags: O_RDWR | O_CLOEXEC, mode: 0)
        } catch {
            throw IOMMUError(.open, error, IOMMUErrorContext(path: cdevPath))
        }
        self.path = cdevPath
        self.openedThrough = .iommufdCdev
        self.system = system
        seam = IOCTLSeam(system)
        self.group = nil
    }

    /// Opens the cdev of a PCI device bound to vfio-pci, found through
    /// `/sys/bus/pci/devices/<address>/vfio-dev/vfioN`.
    public convenience init(_ address: PCIAddress, system: any SystemInterface = LinuxSystem(), logger: Logger = IOMMUFD.silentLogger) throws(IOMMUError) {
        try self.init(cdevPath: Self.cdevPath(of: address, system: system), system: system, logger: logger)
    }

    /// Opens a device through its legacy group (which must have joined a container).
    /// `virtualFunctionToken` is the PF owner's VF token, needed to open an SR-IOV VF.
    public init(_ address: PCIAddress, group: VFIOGroup, virtualFunctionToken: VFToken? = nil) throws(IOMMUError) {
        self.logger = group.container.logger
        fd = try group.openDevice(address, virtualFunctionToken: virtualFunctionToken)
        self.path = "group \(group.number): \(address)"
        self.openedThrough = .legacyGroup
        self.system = group.system
        seam = group.seam
        self.group = group
    }

    /// The cdev path of a PCI device bound to vfio-pci.
    ///
    /// - Throws: `ENOENT` from `opendir` when the device is not bound to vfio-pci (or the
    ///   kernel lacks CONFIG_VFIO_DEVICE_CDEV).
    public static func cdevPath(of address: PCIAddress, system: any SystemInterface) throws(IOMMUError) -> String {
        let directory = address.sysfsPath + "/vfio-dev"
        func notOnVFIO(_ error: Errno) -> IOMMUError {
            var context = IOMMUErrorContext(path: directory)
            context.pciAddress = address.description
            context.driver = (try? system.readLink(address.sysfsPath + "/driver"))?.split(separator: "/").last.map(String.init)
            return IOMMUError(.listDirectory, error, context).advised()
        }
        let names: [String]
        do { names = try system.listDirectory(directory) } catch {
            throw notOnVFIO(error)
        }
        // `vfioN`, or `noiommu-vfioN` for a device without an IOMMU in the unsafe no-IOMMU
        // mode (vfio_main.c:338-339).
        guard let name = names.first(where: { $0.hasPrefix("vfio") || $0.hasPrefix("noiommu-vfio") }) else { throw notOnVFIO(.noSuchFileOrDirectory) }
        return "/dev/vfio/devices/" + name
    }

    deinit {
        if enabledBusMaster {
            do { try setBusMaster(false) } catch {
                logger.debug("clearing Bus Master Enable at close failed", metadata: ["vfio.device": "\(path)", "error": "\(error)"])
            }
        }
        do { try system.close(fd) } catch {
            logger.debug("closing the VFIO device failed", metadata: ["vfio.device": "\(path)", "error": "\(error)"])
        }
    }
}

/// Runs `call` and adds `path` (the device node or group it went through) and the VFIO
/// layer's advice to its error.
func withErrorPath<Value>(_ path: String, _ call: () throws(IOMMUError) -> Value) throws(IOMMUError) -> Value {
    do {
        return try call()
    } catch {
        var error = error
        error.context.path = path
        throw error.advised()
    }
}
