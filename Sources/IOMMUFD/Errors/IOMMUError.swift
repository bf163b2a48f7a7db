public import SystemPackage

/// A failure reported by the kernel (or by MockKernel) for one operation.
///
/// It keeps what an operator needs: the operation in the kernel's spelling,
/// the errno as a named value, the ids and addresses involved, and where in the
/// caller's code it happened. ``explanation`` turns the well-known cases into a
/// sentence with a fix.
///
/// The value is cheap to build (no string formatting until it is printed), so
/// that a failing ioctl costs no more than the system call itself.
public struct IOMMUError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The operation that failed, e.g. ``IOMMUOperation/ioasMap``.
    public var operation: IOMMUOperation
    /// The errno the kernel returned.
    public var errno: Errno
    /// The ids, addresses and lengths the operation was given.
    public var context: IOMMUErrorContext
    /// The caller's source file (`#fileID`).
    public var fileID: String
    /// The caller's source line.
    public var line: Int

    public init(
        _ operation: IOMMUOperation, _ errno: Errno, _ context: IOMMUErrorContext = IOMMUErrorContext(),
        fileID: String = #fileID, line: Int = #line
    ) {
        self.operation = operation
        self.errno = errno
        self.context = context
        self.fileID = fileID
        self.line = line
    }

    /// `IOMMU_IOAS_MAP failed: Cannot allocate memory (errno 12) [ioas=1 length=0x1000]`,
    /// followed by the explanation and fix hint when one is known.
    public var description: String {
        var text = "\(operation.name) failed: \(errno.description) (errno \(errno.rawValue))"
        let details = context.description
        if !details.isEmpty { text += " [\(details)]" }
        if let explanation {
            text += ": \(explanation.meaning)"
            if let fix = explanation.fix { text += " Fix: \(fix)" }
        }
        return text
    }
}

/// The arguments of the failed operation, kept as numbers and rendered only when printed.
public struct IOMMUErrorContext: Sendable, Hashable, CustomStringConvertible {
    /// The object the operation acted on (IOAS, HWPT, device...).
    public var objectID: UInt32?
    /// A second object, e.g. the source IOAS of a copy.
    public var otherObjectID: UInt32?
    public var iova: UInt64?
    public var length: UInt64?
    public var userAddress: UInt64?
    public var fileDescriptor: Int32?
    public var path: String?
    /// `RLIMIT_MEMLOCK` at the time of an `ENOMEM`, in bytes (`nil` unlimited or unknown).
    public var memlockLimit: UInt64?
    /// What the kernel wrote back when it differs from what was asked (e.g. unmapped bytes).
    public var reportedLength: UInt64?
    /// How many entries the kernel said it has when the caller's array was too small
    /// (`EMSGSIZE` from `IOMMU_IOAS_IOVA_RANGES`, `ENOSPC` from the VFIO info calls).
    public var reportedCount: UInt32?
    /// The PCI function the operation concerned (`dddd:bb:dd.f`).
    public var pciAddress: String?
    /// The driver the function was bound to when the operation failed (from sysfs).
    public var driver: String?
    /// The PCI configuration-space offset of a config read or write.
    public var configurationOffset: UInt64?
    /// The VFIO region index (BAR0-5 are 0-5, ROM 6, config 7).
    public var regionIndex: UInt32?
    /// The interrupt vector.
    public var interruptVector: Int?
    /// The call was refused before it reached the kernel because the handle it was made
    /// through had been destroyed (its id may already belong to a newer object).
    public var handleWasDestroyed = false

    public init(
        objectID: UInt32? = nil, otherObjectID: UInt32? = nil, iova: UInt64? = nil, length: UInt64? = nil,
        userAddress: UInt64? = nil, fileDescriptor: Int32? = nil, path: String? = nil
    ) {
        self.objectID = objectID
        self.otherObjectID = otherObjectID
        self.iova = iova
        self.length = length
        self.userAddress = userAddress
        self.fileDescriptor = fileDescriptor
        self.path = path
    }

    public var description: String {
        var parts: [String] = []
        if let path { parts.append("path=\(path)") }
        if let pciAddress { parts.append("device=\(pciAddress)") }
        if let driver { parts.append("driver=\(driver)") }
        if let regionIndex { parts.append("region=\(regionIndex)") }
        if let configurationOffset { parts.append("config-offset=0x\(String(configurationOffset, radix: 16))") }
        if let interruptVector { parts.append("vector=\(interruptVector)") }
        if let objectID { parts.append("id=\(objectID)") }
        if let otherObjectID { parts.append("other-id=\(otherObjectID)") }
        if let fileDescriptor { parts.append("fd=\(fileDescriptor)") }
        if let userAddress { parts.append("va=0x\(String(userAddress, radix: 16))") }
        if let iova { parts.append("iova=0x\(String(iova, radix: 16))") }
        if let length { parts.append("length=0x\(String(length, radix: 16))") }
        if let reportedLength { parts.append("reported=0x\(String(reportedLength, radix: 16))") }
        if let reportedCount { parts.append("reported-count=\(reportedCount)") }
        if handleWasDestroyed { parts.append("destroyed-handle") }
        if let memlockLimit { parts.append("memlock=\(memlockLimit)") }
        return parts.joined(separator: " ")
    }
}
