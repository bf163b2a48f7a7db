import CIOMMUFD
import Logging
import Synchronization
import SystemPackage

/// A hardware page table: an `iommu_domain` the user allocated, for a device of one IOMMU
/// driver, over an IOAS (a paging HWPT). Devices of that driver attach to it (or replace
/// their attachment with it) by its ``id``; it is destroyed, best effort, when the last
/// reference goes.
///
/// Ask the devices first (``IOMMUFD/hardwareInfo(of:kind:fileID:line:)`` and ``PageTableFormats``),
/// then allocate the format wanted: the kernel refuses flags the device's IOMMU cannot do
/// (`EOPNOTSUPP`).
public final class HWPT: Sendable {
    /// The IOAS the HWPT maps (it keeps it alive).
    public let ioas: IOAS
    /// The kernel's id for this HWPT.
    public let id: HWPTID
    /// The flags it was allocated with.
    public let flags: PagingHWPTFlags
    /// The fault queue its IO page faults go to, if it was allocated with one (it keeps it alive).
    public let faultQueue: FaultQueue?
    private let destroyed = Atomic<Bool>(false)

    init(ioas: IOAS, id: HWPTID, flags: PagingHWPTFlags, faultQueue: FaultQueue? = nil) {
        self.ioas = ioas
        self.id = id
        self.flags = flags
        self.faultQueue = faultQueue
        ioas.iommufd.logger.debug("HWPT allocated", metadata: ["hwpt.id": "\(id.rawValue)", "ioas.id": "\(ioas.id.rawValue)"])
    }

    deinit {
        ioas.iommufd.destroyFromDeinit(id, unless: destroyed)
    }

    /// Destroys the HWPT now and reports a failure (the deinitializer would only log it).
    /// Afterwards the handle must not be used: the kernel hands the id to the next object.
    ///
    /// - Throws: `EBUSY` while a device is attached to it (or it is the parent of a nested
    ///   HWPT; the handle stays usable); `ENOENT` when this handle was destroyed already.
    public func destroy(fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        try ioas.iommufd.destroyOnce(id, claiming: destroyed, fileID: fileID, line: line)
    }
}

extension IOAS {
    /// Allocates a paging HWPT over this IOAS for `device`'s IOMMU (`IOMMU_HWPT_ALLOC`).
    /// The IOAS's mappings are loaded into it at once; its aperture's outside is reserved.
    ///
    /// - Throws: `EOPNOTSUPP` for flags the device's IOMMU cannot do (dirty tracking without
    ///   `IOMMU_HW_CAP_DIRTY_TRACKING`, a nesting parent without nesting), `ENOENT` for an
    ///   unknown device, `EADDRINUSE` when a mapping lies outside the aperture, `EFAULT` or
    ///   `ENOMEM` when the IOAS's memory cannot be pinned.
    ///
    /// With `faultQueue`, the IOMMU's page faults on the HWPT go to that fault queue (a
    /// nesting parent cannot have one: `EOPNOTSUPP`). An IOMMU turns fault reporting on
    /// when a device attaches, and may refuse then (intel-iommu without PRI: `ENODEV`).
    public func allocateHWPT(for device: DeviceID, flags: PagingHWPTFlags = [], faultQueue: FaultQueue? = nil,
                             fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> HWPT {
        let raw = unsafe try IOMMUFDIOCTL.hwptAlloc(seam, fd, device: device.rawValue, pageTable: try liveID(.hwptAlloc, fileID: fileID, line: line),
                                             flags: flags.rawValue | (faultQueue == nil ? 0 : IOMMU_HWPT_FAULT_ID_VALID),
                                             dataType: IOMMU_HWPT_DATA_NONE, data: nil, faultID: faultQueue?.id.rawValue ?? 0,
                                             fileID: fileID, line: line)
        return HWPT(ioas: self, id: HWPTID(rawValue: raw), flags: flags, faultQueue: faultQueue)
    }
}
