import CIOMMUFD
public import Logging
import SystemPackage
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// An open `/dev/iommu`: the iommufd context that owns every IOAS, HWPT and bound device made through it.
///
/// Closing it (when the last reference goes) makes the kernel destroy every
/// object it still holds, so children keep a strong reference to it.
public final class IOMMUFD: Sendable {
    /// The system the context talks to (`LinuxSystem` or a mock).
    public let system: any SystemInterface
    /// The system as the ioctl catalogue calls it.
    package let seam: IOCTLSeam
    /// The `/dev/iommu` descriptor.
    public var fileDescriptor: FileDescriptor { FileDescriptor(rawValue: fd) }
    /// The raw descriptor, for the catalogue's calls.
    let fd: Int32
    /// Where the context and its children log (creation, destruction, and teardown failures
    /// a deinitializer can only report).
    public let logger: Logger
    private let closesOnDeinit: Bool

    /// Opens `/dev/iommu` (or another path) read-write with `O_CLOEXEC`.
    ///
    /// - Throws: `open` with `ENOENT` when the kernel has no iommufd, `EACCES` when the user lacks permission.
    public convenience init(
        path: String = "/dev/iommu", system: any SystemInterface = LinuxSystem(), logger: Logger = IOMMUFD.silentLogger
    ) throws(IOMMUError) {
        let fd: Int32
        do {
            fd = try system.open(path, flags: O_RDWR | O_CLOEXEC, mode: 0)
        } catch {
            throw IOMMUError(.open, error, IOMMUErrorContext(path: path))
        }
        self.init(adopting: FileDescriptor(rawValue: fd), system: system, closeOnDeinit: true, logger: logger)
    }

    /// Adopts an already open iommufd (for example one passed by a privileged parent, as QEMU's `-object iommufd,fd=` does).
    public init(adopting descriptor: FileDescriptor, system: any SystemInterface = LinuxSystem(), closeOnDeinit: Bool = true, logger: Logger = IOMMUFD.silentLogger) {
        self.system = system
        seam = IOCTLSeam(system)
        self.fd = descriptor.rawValue
        self.closesOnDeinit = closeOnDeinit
        var logger = logger
        logger[metadataKey: "iommufd.fd"] = "\(descriptor.rawValue)"
        self.logger = logger
        logger.debug("iommufd opened")
    }

    deinit {
        guard closesOnDeinit else { return }
        do {
            try system.close(fd)
            logger.debug("iommufd closed")
        } catch {
            logger.debug("closing iommufd failed", metadata: ["error": "\(error)"])
        }
    }

    /// A logger that discards everything: the default for library objects.
    public static let silentLogger = Logger(label: "swift-iommufd", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Destroys any object by id. The corresponding ioctl is `IOMMU_DESTROY`.
    ///
    /// - Throws: `ENOENT` for an unknown id, `EBUSY` while the object is in use.
    public func destroy<Kind>(_ id: IOMMUObjectID<Kind>, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        try destroy(rawID: id.rawValue, fileID: fileID, line: line)
    }

    /// Destroys the object `id` of a handle once: `destroyed` is claimed first, so two threads
    /// cannot both issue `IOMMU_DESTROY` (the second could hit an object that reused the id),
    /// and released again when the kernel refuses (`EBUSY`), so the handle stays usable.
    /// A handle already destroyed gets `ENOENT` without a system call.
    func destroyOnce<Kind>(_ id: IOMMUObjectID<Kind>, claiming destroyed: borrowing Atomic<Bool>,
                           fileID: StaticString, line: Int) throws(IOMMUError) {
        guard destroyed.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else {
            throw Self.staleHandle(.destroy, id: id.rawValue, fileID: fileID, line: line)
        }
        do {
            try destroy(id, fileID: fileID, line: line)
        } catch {
            destroyed.store(false, ordering: .releasing)
            throw error
        }
    }

    /// The deinitializer's half of ``destroyOnce(_:claiming:fileID:line:)``: destroys `id`
    /// unless its handle already did, and only logs a failure (a deinitializer cannot throw).
    func destroyFromDeinit<Kind>(_ id: IOMMUObjectID<Kind>, unless destroyed: borrowing Atomic<Bool>) {
        guard !destroyed.load(ordering: .acquiring) else { return }
        do {
            try destroy(id)
            logger.debug("\(Kind.name) destroyed", metadata: ["id": "\(id.rawValue)"])
        } catch {
            logger.debug("destroying \(Kind.name) failed", metadata: ["id": "\(id.rawValue)", "error": "\(error)"])
        }
    }

    /// The refusal of a call through a handle whose object was destroyed: `ENOENT`, never issued.
    static func staleHandle(_ operation: IOMMUOperation, id: UInt32, fileID: StaticString, line: Int) -> IOMMUError {
        var context = IOMMUErrorContext(objectID: id)
        context.handleWasDestroyed = true
        return IOMMUError(operation, .noSuchFileOrDirectory, context, fileID: fileID, line: line)
    }

    /// Destroys an object given by its raw kernel id (for ids received from elsewhere).
    public func destroy(rawID: UInt32, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        try IOMMUFDIOCTL.destroy(seam, fd, id: rawID, fileID: fileID, line: line)
    }

    /// Allocates a new, empty I/O address space. The corresponding ioctl is `IOMMU_IOAS_ALLOC`.
    public func allocateIOAS(fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> IOAS {
        let id = try IOMMUFDIOCTL.ioasAlloc(seam, fd, fileID: fileID, line: line)
        return IOAS(iommufd: self, id: IOASID(rawValue: id))
    }
}
