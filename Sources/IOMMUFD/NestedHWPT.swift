import CIOMMUFD
import Logging
import Synchronization

/// The flags a nested HWPT is allocated with (`IOMMU_HWPT_ALLOC_*`; nesting parent and
/// dirty tracking belong to the parent, so the kernel refuses them here with `EOPNOTSUPP`).
public struct NestedHWPTFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    /// Creates the set from `IOMMU_HWPT_ALLOC_*` bits.
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// The nested HWPT can be attached to PASIDs as well as to the RID.
    public static let pasid = NestedHWPTFlags(rawValue: IOMMU_HWPT_ALLOC_PASID)
}

/// A nested HWPT: an `iommu_domain` whose first-stage table lives in user memory in a
/// vendor format (``NestedHWPTData``), translated again by its nesting parent, a paging
/// ``HWPT``, directly or through a ``VIOMMU``. Devices of the parent's driver attach to it by its ``id`` like to any HWPT;
/// when the user changes its table, it tells the IOMMU's caches with
/// ``invalidate(_:fileID:line:)``. It keeps the parent alive and is destroyed, best effort,
/// when the last reference goes.
public final class NestedHWPT: Sendable {
    /// The nesting parent (second stage) it translates through.
    public let parent: HWPT
    /// The vIOMMU it was allocated on, if it was (it keeps it alive).
    public let viommu: VIOMMU?
    /// The kernel's id for this HWPT.
    public let id: HWPTID
    /// The vendor format of its table.
    public let format: NestedHWPTFormat
    /// The flags it was allocated with.
    public let flags: NestedHWPTFlags
    /// The fault queue its IO page faults go to, if it was allocated with one (it keeps it alive).
    public let faultQueue: FaultQueue?
    private let destroyed = Atomic<Bool>(false)

    init(parent: HWPT, viommu: VIOMMU? = nil, id: HWPTID, format: NestedHWPTFormat, flags: NestedHWPTFlags, faultQueue: FaultQueue?) {
        self.parent = parent
        self.viommu = viommu
        self.faultQueue = faultQueue
        self.id = id
        self.format = format
        self.flags = flags
        parent.ioas.iommufd.logger.debug("nested HWPT allocated", metadata: ["hwpt.id": "\(id.rawValue)", "parent.id": "\(parent.id.rawValue)"])
    }

    deinit {
        parent.ioas.iommufd.destroyFromDeinit(id, unless: destroyed)
    }

    /// Destroys the nested HWPT now and reports a failure (the deinitializer would only log
    /// it). Afterwards the handle must not be used.
    ///
    /// - Throws: `EBUSY` while a device is attached to it (the handle stays usable);
    ///   `ENOENT` when this handle was destroyed already.
    public func destroy(fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        try parent.ioas.iommufd.destroyOnce(id, claiming: destroyed, fileID: fileID, line: line)
    }

    /// Hands `entries` to the IOMMU's caches for this HWPT, in order, and returns how many
    /// the kernel handled (all of them on success). The kernel stops at the first entry it
    /// refuses; the error's `context.handledCount` says how many went before it.
    ///
    /// - Throws: `EINVAL` for a format this HWPT's driver does not take, or an entry it
    ///   refuses (a selftest IOTLB id past 3); `EOPNOTSUPP` for flags it does not know.
    @discardableResult
    public func invalidate<Entry: CacheInvalidation>(_ entries: [Entry], fileID: StaticString = #fileID,
                                                     line: Int = #line) throws(IOMMUError) -> Int {
        try parent.ioas.iommufd.invalidateCaches(of: id.rawValue, entries, fileID: fileID, line: line)
    }

    /// Whether the kernel takes invalidations of `entryType`'s format for this HWPT: the
    /// documented probe, an array of no entries.
    public func acceptsInvalidations<Entry: CacheInvalidation>(of entryType: Entry.Type, fileID: StaticString = #fileID,
                                                               line: Int = #line) -> Bool {
        (try? parent.ioas.iommufd.invalidateCaches(of: id.rawValue, [Entry](), fileID: fileID, line: line)) != nil
    }
}

extension HWPT {
    /// Allocates a nested HWPT on this HWPT for `device`, whose first stage is the user table
    /// `data` describes (`IOMMU_HWPT_ALLOC` with this HWPT as `pt_id`). This HWPT must have
    /// been allocated as a ``PagingHWPTFlags/nestParent`` for the same IOMMU; ask
    /// ``PageTableFormats`` which formats the device takes.
    ///
    /// - Throws: `EINVAL` when this HWPT is not a nesting parent (or the data is too short
    ///   or longer than the kernel's struct), `EOPNOTSUPP` for a format or flags the
    ///   device's IOMMU does not take, `ENOENT` for an unknown device.
    public func allocateNested<Data: NestedHWPTData>(for device: DeviceID, data: Data, flags: NestedHWPTFlags = [], faultQueue: FaultQueue? = nil,
                                                     fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> NestedHWPT {
        let raw = try ioas.iommufd.allocateNestedHWPT(for: device, on: id.rawValue, data: data, flags: flags, faultQueue: faultQueue,
                                                      fileID: fileID, line: line)
        return NestedHWPT(parent: self, id: HWPTID(rawValue: raw), format: Data.format, flags: flags, faultQueue: faultQueue)
    }
}

extension IOMMUFD {
    /// `IOMMU_HWPT_ALLOC` of a nested HWPT on `pageTable` (a nesting parent or a vIOMMU):
    /// the one place the typed layer sends vendor data.
    func allocateNestedHWPT<Data: NestedHWPTData>(for device: DeviceID, on pageTable: UInt32, data: Data, flags: NestedHWPTFlags,
                                                  faultQueue: FaultQueue?, fileID: StaticString, line: Int) throws(IOMMUError) -> UInt32 {
        var layout = data.kernelLayout
        return unsafe try withUnsafeBytes(of: &layout) { (bytes) throws(IOMMUError) -> UInt32 in
            unsafe try IOMMUFDIOCTL.hwptAlloc(seam, fd, device: device.rawValue, pageTable: pageTable,
                                              flags: flags.rawValue | (faultQueue == nil ? 0 : IOMMU_HWPT_FAULT_ID_VALID),
                                              dataType: Data.format.dataType, data: bytes, faultID: faultQueue?.id.rawValue ?? 0, fileID: fileID, line: line)
        }
    }
}

extension IOMMUFD {
    /// `IOMMU_HWPT_INVALIDATE` of `entries` on a nested HWPT or vIOMMU: the one place the
    /// typed layer builds the entry array.
    package func invalidateCaches<Entry: CacheInvalidation>(of pageTable: UInt32, _ entries: [Entry],
                                                    fileID: StaticString, line: Int) throws(IOMMUError) -> Int {
        let layouts = entries.map(\.kernelLayout)
        var result: Result<UInt32, IOMMUError> = .success(0)
        unsafe layouts.withUnsafeBytes { bytes in
            result = Result { () throws(IOMMUError) -> UInt32 in
                unsafe try IOMMUFDIOCTL.hwptInvalidate(seam, fd, pageTable: pageTable, dataType: Entry.dataType,
                                                       entries: layouts.isEmpty ? nil : bytes.baseAddress,
                                                       entryLength: UInt32(MemoryLayout<Entry.KernelLayout>.size),
                                                       entryCount: UInt32(layouts.count), fileID: fileID, line: line)
            }
        }
        let handled = try result.get()
        return Int(handled)
    }
}
