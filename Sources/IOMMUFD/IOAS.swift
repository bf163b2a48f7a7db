import CIOMMUFD
import SystemPackage
import Logging
import Synchronization

/// An I/O address space: a map from IOVAs to memory, to which devices and HWPTs attach.
///
/// Shared by every device attached to it, so it is a class; it keeps its
/// ``IOMMUFD`` alive, and is destroyed (best effort) when the last reference goes.
public final class IOAS: Sendable {
    /// The context the IOAS lives in.
    public let iommufd: IOMMUFD
    /// The kernel's id for this IOAS.
    public let id: IOASID
    /// The context's descriptor and system, copied here so hot calls need not go through `iommufd`.
    let fd: Int32
    let system: any SystemInterface
    /// The system as the ioctl catalogue calls it.
    package let seam: IOCTLSeam
    let destroyed = Atomic<Bool>(false)
    /// Whether the last reference destroys the kernel object (false only for a wrapped id
    /// this handle did not allocate).
    private let destroysOnDeinit: Bool

    init(iommufd: IOMMUFD, id: IOASID, destroysOnDeinit: Bool = true) {
        self.iommufd = iommufd
        self.id = id
        self.destroysOnDeinit = destroysOnDeinit
        self.fd = iommufd.fd
        self.system = iommufd.system
        seam = iommufd.seam
        iommufd.logger.debug("IOAS allocated", metadata: ["ioas.id": "\(id.rawValue)"])
    }

    deinit {
        guard destroysOnDeinit, !destroyed.load(ordering: .acquiring) else { return }
        do {
            try iommufd.destroy(id)
            iommufd.logger.debug("IOAS destroyed", metadata: ["ioas.id": "\(id.rawValue)"])
        } catch {
            iommufd.logger.debug("destroying IOAS failed", metadata: ["ioas.id": "\(id.rawValue)", "error": "\(error)"])
        }
    }

    /// Destroys the IOAS now and reports a failure (the deinitializer would only log it).
    /// Afterwards every call through this handle throws `ENOENT` without reaching the
    /// kernel: the kernel hands the id to the next object it allocates, so a stale handle
    /// must never issue it again.
    ///
    /// - Throws: `EBUSY` while a device or HWPT still uses it (the handle stays usable);
    ///   `ENOENT` when this handle was destroyed already.
    public func destroy(fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        try iommufd.destroyOnce(id, claiming: destroyed, fileID: fileID, line: line)
    }

    /// The kernel id for a call through this handle, or `ENOENT` (without a system call)
    /// once the handle was destroyed.
    @inline(__always)
    package func liveID(_ operation: IOMMUOperation, fileID: StaticString, line: Int) throws(IOMMUError) -> UInt32 {
        guard !destroyed.load(ordering: .acquiring) else { throw staleHandle(operation, fileID: fileID, line: line) }
        return id.rawValue
    }

    private func staleHandle(_ operation: IOMMUOperation, fileID: StaticString, line: Int) -> IOMMUError {
        IOMMUFD.staleHandle(operation, id: id.rawValue, fileID: fileID, line: line)
    }
}

/// The access a device is given to a mapping.
public struct MapAccess: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// The device may read the memory (`IOMMU_IOAS_MAP_READABLE`).
    public static let readable = MapAccess(rawValue: IOMMU_IOAS_MAP_READABLE)
    /// The device may write the memory (`IOMMU_IOAS_MAP_WRITEABLE`).
    public static let writeable = MapAccess(rawValue: IOMMU_IOAS_MAP_WRITEABLE)
    /// Both directions.
    public static let readWrite: MapAccess = [.readable, .writeable]
}

/// One mapping made in an IOAS: where it landed and how long it is.
public struct IOASMapping: Hashable, Sendable, CustomStringConvertible {
    /// The first IOVA of the mapping: the fixed one asked for, or the one the kernel chose (`iova` written back).
    public var iova: IOVA
    /// The mapping's length in bytes.
    public var length: UInt64

    /// Creates a mapping record from its first IOVA and its length in bytes.
    public init(iova: IOVA, length: UInt64) {
        self.iova = iova
        self.length = length
    }

    /// The inclusive IOVA range covered.
    public var range: IOVARange { IOVARange(start: iova, length: length) }

    public var description: String { "\(iova)+0x\(String(length, radix: 16))" }
}

extension IOAS {
    /// BENCHMARK-ONLY: wraps an id without allocating it, so a benchmark can drive the
    /// typed path against a descriptor that fails every ioctl (such as /dev/null).
    @_spi(Selftest)
    public static func _benchmarkAdopt(iommufd: IOMMUFD, rawID: UInt32) -> IOAS {
        IOAS(iommufd: iommufd, id: IOASID(rawValue: rawID), destroysOnDeinit: false)
    }
}
