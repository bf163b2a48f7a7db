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
    /// The operation that failed, e.g. `IOMMUOperation.ioasMap`.
    public var operation: IOMMUOperation
    /// The errno the kernel returned.
    public var errno: Errno
    /// The ids, addresses and lengths the operation was given.
    public var context: IOMMUErrorContext
    /// The caller's source file (`#fileID`).
    public var fileID: StaticString
    /// The caller's source line.
    public var line: Int

    /// Creates an error from the failed `operation`, the `errno` it returned, the arguments it was given, and the
    /// caller's location (defaulting to the call site).
    public init(
        _ operation: IOMMUOperation, _ errno: Errno, _ context: IOMMUErrorContext = IOMMUErrorContext(),
        fileID: StaticString = #fileID, line: Int = #line
    ) {
        self.operation = operation
        self.errno = errno
        self.context = context
        self.fileID = fileID
        self.line = line
    }

    /// Two errors are equal when they say the same: operation, errno, context and location.
    public static func == (lhs: IOMMUError, rhs: IOMMUError) -> Bool {
        lhs.operation == rhs.operation && lhs.errno == rhs.errno && lhs.context == rhs.context
            && lhs.line == rhs.line && lhs.fileID.description == rhs.fileID.description
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(operation)
        hasher.combine(errno)
        hasher.combine(context)
        hasher.combine(fileID.description)
        hasher.combine(line)
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
///
/// Cheap to make and to throw: the fields every ioctl error has are plain numbers stored
/// inline; the rarer ones (paths, names, reported values) live in a copy-on-write box that
/// exists only when one of them is set, so the common error copies no strings.
public struct IOMMUErrorContext: Sendable, Hashable, CustomStringConvertible {
    /// The object the operation acted on (IOAS, HWPT, device...).
    public var objectID: UInt32?
    /// A second object, e.g. the source IOAS of a copy.
    public var otherObjectID: UInt32?
    /// The IOVA the operation was given.
    public var iova: UInt64?
    /// The length the operation was given.
    public var length: UInt64?
    /// The user virtual address the operation was given.
    public var userAddress: UInt64?
    /// The file descriptor the operation was given (a memfd, an iommufd for a bind...).
    public var fileDescriptor: Int32?
    /// The rarer fields, allocated only when one is set.
    private var details: Details?

    /// The rarer fields of a context.
    private final class Details: @unchecked Sendable {
        // Mutated only while uniquely referenced (copy-on-write), so sharing is safe.
        var path: String?
        var memlockLimit: UInt64?
        var reportedLength: UInt64?
        var reportedCount: UInt32?
        var handledCount: UInt32?
        var pciAddress: String?
        var driver: String?
        var configurationOffset: UInt64?
        var regionIndex: UInt32?
        var interruptVector: Int?
        var handleWasDestroyed: Bool = false
        var handleFromBeforeFork: Bool = false
        var advice: IOMMUErrorExplanation?

        func copy() -> Details {
            let copy = Details()
            copy.path = path
            copy.memlockLimit = memlockLimit
            copy.reportedLength = reportedLength
            copy.reportedCount = reportedCount
            copy.handledCount = handledCount
            copy.pciAddress = pciAddress
            copy.driver = driver
            copy.configurationOffset = configurationOffset
            copy.regionIndex = regionIndex
            copy.interruptVector = interruptVector
            copy.handleWasDestroyed = handleWasDestroyed
            copy.handleFromBeforeFork = handleFromBeforeFork
            copy.advice = advice
            return copy
        }
    }

    private mutating func updateDetails(_ change: (Details) -> Void) {
        if details == nil {
            details = Details()
        } else if !isKnownUniquelyReferenced(&details!) {
            details = details!.copy()
        }
        change(details!)
    }

    /// The device node or sysfs path involved.
    public var path: String? {
        get { details?.path ?? nil }
        set { updateDetails { $0.path = newValue } }
    }
    /// `RLIMIT_MEMLOCK` at the time of an `ENOMEM`, in bytes (`nil` unlimited or unknown).
    public var memlockLimit: UInt64? {
        get { details?.memlockLimit ?? nil }
        set { updateDetails { $0.memlockLimit = newValue } }
    }
    /// What the kernel wrote back when it differs from what was asked (e.g. unmapped bytes).
    public var reportedLength: UInt64? {
        get { details?.reportedLength ?? nil }
        set { updateDetails { $0.reportedLength = newValue } }
    }
    /// How many entries the kernel said it has when the caller's array was too small
    /// (`EMSGSIZE` from `IOMMU_IOAS_IOVA_RANGES`, `ENOSPC` from the VFIO info calls).
    public var reportedCount: UInt32? {
        get { details?.reportedCount ?? nil }
        set { updateDetails { $0.reportedCount = newValue } }
    }
    /// How many entries of an array the kernel handled before it stopped at a bad one
    /// (`IOMMU_HWPT_INVALIDATE` writes the count back with its error).
    public var handledCount: UInt32? {
        get { details?.handledCount ?? nil }
        set { updateDetails { $0.handledCount = newValue } }
    }
    /// The PCI function the operation concerned (`dddd:bb:dd.f`).
    public var pciAddress: String? {
        get { details?.pciAddress ?? nil }
        set { updateDetails { $0.pciAddress = newValue } }
    }
    /// The driver the function was bound to when the operation failed (from sysfs).
    public var driver: String? {
        get { details?.driver ?? nil }
        set { updateDetails { $0.driver = newValue } }
    }
    /// The PCI configuration-space offset of a config read or write.
    public var configurationOffset: UInt64? {
        get { details?.configurationOffset ?? nil }
        set { updateDetails { $0.configurationOffset = newValue } }
    }
    /// The VFIO region index (BAR0-5 are 0-5, ROM 6, config 7).
    public var regionIndex: UInt32? {
        get { details?.regionIndex ?? nil }
        set { updateDetails { $0.regionIndex = newValue } }
    }
    /// The interrupt vector.
    public var interruptVector: Int? {
        get { details?.interruptVector ?? nil }
        set { updateDetails { $0.interruptVector = newValue } }
    }
    /// The call was refused before it reached the kernel because the handle it was made
    /// through had been destroyed (its id may already belong to a newer object).
    public var handleWasDestroyed: Bool {
        get { details?.handleWasDestroyed ?? false }
        set { updateDetails { $0.handleWasDestroyed = newValue } }
    }
    /// The call was refused before it reached the kernel because the handle was made in the
    /// parent of a `fork()` and is used in the child (the kernel would have let the child act
    /// on the parent's objects through the inherited descriptors).
    public var handleFromBeforeFork: Bool {
        get { details?.handleFromBeforeFork ?? false }
        set { updateDetails { $0.handleFromBeforeFork = newValue } }
    }

    /// What the layer that threw the error knows about it (the VFIO layer's advice for its
    /// ioctls); ``IOMMUError/explanation`` prefers it to the core's own.
    public var advice: IOMMUErrorExplanation? {
        get { details?.advice }
        set { updateDetails { $0.advice = newValue } }
    }

    /// Creates a context from the arguments the operation was given; `nil` (the default) leaves an argument out.
    /// The rarer fields (``memlockLimit``, ``pciAddress``...) are set afterwards.
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
        if let path { self.path = path }
    }

    public static func == (lhs: IOMMUErrorContext, rhs: IOMMUErrorContext) -> Bool {
        lhs.objectID == rhs.objectID && lhs.otherObjectID == rhs.otherObjectID && lhs.iova == rhs.iova && lhs.length == rhs.length
            && lhs.userAddress == rhs.userAddress && lhs.fileDescriptor == rhs.fileDescriptor
            && lhs.path == rhs.path && lhs.memlockLimit == rhs.memlockLimit && lhs.reportedLength == rhs.reportedLength && lhs.reportedCount == rhs.reportedCount && lhs.handledCount == rhs.handledCount && lhs.pciAddress == rhs.pciAddress && lhs.driver == rhs.driver && lhs.configurationOffset == rhs.configurationOffset && lhs.regionIndex == rhs.regionIndex && lhs.interruptVector == rhs.interruptVector && lhs.handleWasDestroyed == rhs.handleWasDestroyed && lhs.handleFromBeforeFork == rhs.handleFromBeforeFork && lhs.advice == rhs.advice
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(objectID)
        hasher.combine(otherObjectID)
        hasher.combine(iova)
        hasher.combine(length)
        hasher.combine(userAddress)
        hasher.combine(fileDescriptor)
        hasher.combine(path)
        hasher.combine(memlockLimit)
        hasher.combine(reportedLength)
        hasher.combine(reportedCount)
        hasher.combine(handledCount)
        hasher.combine(pciAddress)
        hasher.combine(driver)
        hasher.combine(configurationOffset)
        hasher.combine(regionIndex)
        hasher.combine(interruptVector)
        hasher.combine(handleWasDestroyed)
        hasher.combine(handleFromBeforeFork)
        hasher.combine(advice)
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
        if let handledCount { parts.append("handled=\(handledCount)") }
        if handleWasDestroyed { parts.append("destroyed-handle") }
        if handleFromBeforeFork { parts.append("handle-from-before-fork") }
        if let memlockLimit { parts.append("memlock=\(memlockLimit)") }
        return parts.joined(separator: " ")
    }
}
