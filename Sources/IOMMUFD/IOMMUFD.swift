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
    /// The system the context talks to (``LinuxSystem`` or a mock).
    public let system: any SystemInterface
    /// The `/dev/iommu` file descriptor.
    public let fileDescriptor: Int32
    let logger: Logger
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
        self.init(adopting: fd, system: system, closeOnDeinit: true, logger: logger)
    }

    /// Adopts an already open iommufd (for example one passed by a privileged parent, as QEMU's `-object iommufd,fd=` does).
    public init(adopting fileDescriptor: Int32, system: any SystemInterface = LinuxSystem(), closeOnDeinit: Bool = true, logger: Logger = IOMMUFD.silentLogger) {
        self.system = system
        self.fileDescriptor = fileDescriptor
        self.closesOnDeinit = closeOnDeinit
        var logger = logger
        logger[metadataKey: "iommufd.fd"] = "\(fileDescriptor)"
        self.logger = logger
        logger.debug("iommufd opened")
    }

    deinit {
        guard closesOnDeinit else { return }
        do {
            try system.close(fileDescriptor)
            logger.debug("iommufd closed")
        } catch {
            logger.debug("closing iommufd failed", metadata: ["error": "\(error)"])
        }
    }

    /// A logger that discards everything: the default for library objects.
    public static let silentLogger = Logger(label: "swift-iommufd", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Issues one iommufd command and turns a failure into an ``IOMMUError``.
    @inline(__always)
    func perform<Command>(
        _ request: UInt, _ command: inout Command, _ operation: IOMMUOperation,
        _ context: @autoclosure () -> IOMMUErrorContext, fileID: String, line: Int
    ) throws(IOMMUError) {
        try performIOMMUCommand(system, fileDescriptor, request, &command, operation, context(), fileID: fileID, line: line)
    }

    /// Issues an iommufd command that the typed layer does not wrap yet (the caller
    /// fills the struct, including its `size`), turning a failure into an ``IOMMUError``.
    public func performRaw<Command>(
        _ request: UInt, _ command: inout Command, _ operation: IOMMUOperation,
        context: IOMMUErrorContext = IOMMUErrorContext(), fileID: String = #fileID, line: Int = #line
    ) throws(IOMMUError) {
        try perform(request, &command, operation, context, fileID: fileID, line: line)
    }

    /// Destroys any object by id. The corresponding ioctl is `IOMMU_DESTROY`.
    ///
    /// - Throws: `ENOENT` for an unknown id, `EBUSY` while the object is in use.
    public func destroy<Kind>(_ id: IOMMUObjectID<Kind>, fileID: String = #fileID, line: Int = #line) throws(IOMMUError) {
        try destroy(rawID: id.rawValue, fileID: fileID, line: line)
    }

    /// Destroys an object given by its raw kernel id (for ids received from elsewhere).
    public func destroy(rawID: UInt32, fileID: String = #fileID, line: Int = #line) throws(IOMMUError) {
        var command = iommu_destroy(size: UInt32(MemoryLayout<iommu_destroy>.size), id: rawID)
        try perform(IOMMU_DESTROY, &command, .destroy, IOMMUErrorContext(objectID: rawID), fileID: fileID, line: line)
    }

    /// Allocates a new, empty I/O address space. The corresponding ioctl is `IOMMU_IOAS_ALLOC`.
    public func allocateIOAS(fileID: String = #fileID, line: Int = #line) throws(IOMMUError) -> IOAS {
        var command = iommu_ioas_alloc()
        command.size = UInt32(MemoryLayout<iommu_ioas_alloc>.size)
        try perform(IOMMU_IOAS_ALLOC, &command, .ioasAlloc, IOMMUErrorContext(), fileID: fileID, line: line)
        return IOAS(iommufd: self, id: IOASID(rawValue: command.out_ioas_id))
    }
}

/// One command on an iommufd or VFIO descriptor, without touching any object: the hot
/// path of every typed call. Reading `system` and the descriptor once and passing them
/// down keeps reference counting off the path. The VFIO layer's device, group and
/// container descriptors use it too.
@inline(__always)
public func performIOMMUCommand<Command>(
    _ system: any SystemInterface, _ fd: Int32, _ request: UInt, _ command: inout Command,
    _ operation: IOMMUOperation, _ context: @autoclosure () -> IOMMUErrorContext, fileID: String, line: Int
) throws(IOMMUError) {
    do {
        // The pointer is valid only inside the closure: the kernel reads and writes
        // the command while the ioctl runs, never after.
        _ = try withUnsafeMutableBytes(of: &command) { (bytes) throws(Errno) -> Int32 in
            try system.ioctl(fd, request, bytes.baseAddress)
        }
    } catch {
        throw IOMMUError(operation, error, context(), fileID: fileID, line: line)
    }
}
