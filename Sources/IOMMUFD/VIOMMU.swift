import CIOMMUFD
import Logging
import Synchronization

/// The kinds of vIOMMU (`enum iommu_viommu_type`).
public enum VIOMMUType: Sendable, Hashable {
    /// An SMMUv3's virtual instance (`IOMMU_VIOMMU_TYPE_ARM_SMMUV3`).
    case armSMMUv3
    /// NVIDIA Tegra241's CMDQV on an SMMUv3 (`IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV`).
    case tegra241CMDQV
    /// The kernel selftest's mock vIOMMU (`IOMMU_VIOMMU_TYPE_SELFTEST`).
    case selftest
    /// Any other number, as the kernel would be asked (0 is refused with `EOPNOTSUPP`).
    case other(UInt32)

    /// The kernel's type number.
    public var rawValue: UInt32 {
        switch self {
        case .armSMMUv3: IOMMU_VIOMMU_TYPE_ARM_SMMUV3
        case .tegra241CMDQV: IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV
        case .selftest: IOMMU_VIOMMU_TYPE_SELFTEST
        case .other(let value): value
        }
    }
}

/// The data a vIOMMU is allocated with, in and out: the driver reads what the user says
/// and writes its answer back into the same struct (an mmap offset for its hardware
/// region, an echo).
public protocol VIOMMUData: Sendable {
    /// The kernel's layout (a C struct of the shim, copied byte for byte).
    associatedtype KernelLayout
    /// The vIOMMU type the data belongs to.
    static var type: VIOMMUType { get }
    /// The data as the kernel reads it.
    var kernelLayout: KernelLayout { get }
    /// The data with the kernel's answer read back.
    init(answer: KernelLayout)
}

/// The kernel selftest's vIOMMU data (`struct iommu_viommu_selftest`): a value the driver
/// echoes back, and the offset and length of the region it offers to mmap from the
/// iommufd descriptor.
public struct SelftestVIOMMUData: VIOMMUData, Hashable {
    /// What the user passes in.
    public var inData: UInt32
    /// What the driver wrote back (a copy of ``inData``).
    public var outData: UInt32 = 0
    /// Where to mmap the vIOMMU's region from the iommufd descriptor.
    public var mmapOffset: UInt64 = 0
    /// How long that region is.
    public var mmapLength: UInt64 = 0

    /// Data that passes `inData` in.
    public init(inData: UInt32) { self.inData = inData }
    /// The data with the driver's answer.
    public init(answer: iommu_viommu_selftest) {
        inData = answer.in_data
        outData = answer.out_data
        mmapOffset = answer.out_mmap_offset
        mmapLength = answer.out_mmap_length
    }

    /// `IOMMU_VIOMMU_TYPE_SELFTEST`.
    public static var type: VIOMMUType { .selftest }
    /// `struct iommu_viommu_selftest`.
    public var kernelLayout: iommu_viommu_selftest {
        iommu_viommu_selftest(in_data: inData, out_data: outData, out_mmap_offset: mmapOffset, out_mmap_length: mmapLength)
    }
}

/// The kernel selftest's vIOMMU-level invalidation (`struct iommu_viommu_invalidate_selftest`,
/// `IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST`): clears one entry (or all) of the device cache
/// of the vDEVICE `vdevID`.
public struct SelftestVIOMMUInvalidation: CacheInvalidation, Hashable {
    /// The raw flags (`IOMMU_TEST_INVALIDATE_FLAG_ALL` is the only one the kernel knows).
    public var flags: UInt32
    /// The virtual device id of a vDEVICE of this vIOMMU (unknown ones are `EINVAL`).
    public var vdevID: UInt32
    /// The cache entry (0-3).
    public var cacheID: UInt32

    /// An entry with these raw fields.
    public init(flags: UInt32 = 0, vdevID: UInt32, cacheID: UInt32) {
        self.flags = flags
        self.vdevID = vdevID
        self.cacheID = cacheID
    }

    /// `IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST`.
    public static var dataType: UInt32 { IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST }
    /// `struct iommu_viommu_invalidate_selftest`.
    public var kernelLayout: iommu_viommu_invalidate_selftest {
        iommu_viommu_invalidate_selftest(flags: flags, vdev_id: vdevID, cache_id: cacheID)
    }
}

/// A vIOMMU: the slice of a physical IOMMU a VMM hands to one guest, on a nesting-parent
/// ``HWPT`` (the guest's second stage). Nested HWPTs allocated on it
/// (``allocateNested(for:data:flags:faultQueue:fileID:line:)``) carry the guest's table in the vendor
/// format (an SMMUv3 STE, an AMD guest DTE), and commands the guest queued go to its
/// caches with ``invalidate(_:fileID:line:)``. It keeps the parent alive and is destroyed,
/// best effort, when the last reference goes.
public final class VIOMMU: Sendable {
    /// The nesting parent it is allocated on.
    public let parent: HWPT
    /// The kernel's id for this vIOMMU.
    public let id: VIOMMUID
    /// Its type.
    public let type: VIOMMUType
    private let destroyed = Atomic<Bool>(false)

    init(parent: HWPT, id: VIOMMUID, type: VIOMMUType) {
        self.parent = parent
        self.id = id
        self.type = type
        parent.ioas.iommufd.logger.debug("vIOMMU allocated", metadata: ["viommu.id": "\(id.rawValue)", "parent.id": "\(parent.id.rawValue)"])
    }

    deinit {
        parent.ioas.iommufd.destroyFromDeinit(id, unless: destroyed)
    }

    /// Destroys the vIOMMU now and reports a failure.
    ///
    /// - Throws: `EBUSY` while a nested HWPT or a vDEVICE is on it (the handle stays
    ///   usable); `ENOENT` when this handle was destroyed already.
    public func destroy(fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        try parent.ioas.iommufd.destroyOnce(id, claiming: destroyed, fileID: fileID, line: line)
    }

    /// Allocates a nested HWPT on this vIOMMU for `device` (a device behind the same
    /// physical IOMMU) with the guest's table `data`.
    ///
    /// - Throws: `EINVAL` for a device behind another IOMMU (or data of the wrong length),
    ///   `EOPNOTSUPP` for a format or flags the driver does not take.
    public func allocateNested<Data: NestedHWPTData>(for device: DeviceID, data: Data, flags: NestedHWPTFlags = [], faultQueue: FaultQueue? = nil,
                                                     fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> NestedHWPT {
        let raw = try parent.ioas.iommufd.allocateNestedHWPT(for: device, on: id.rawValue, data: data, flags: flags, faultQueue: faultQueue,
                                                             fileID: fileID, line: line)
        return NestedHWPT(parent: parent, viommu: self, id: HWPTID(rawValue: raw), format: Data.format, flags: flags, faultQueue: faultQueue)
    }

    /// Hands `entries` (commands the guest queued, such as ``SMMUv3Command``) to the
    /// vIOMMU's caches, in order; returns how many the kernel handled. The kernel stops at
    /// the first it refuses; the error's `context.handledCount` says how many went before.
    @discardableResult
    public func invalidate<Entry: CacheInvalidation>(_ entries: [Entry], fileID: StaticString = #fileID,
                                                     line: Int = #line) throws(IOMMUError) -> Int {
        try parent.ioas.iommufd.invalidateCaches(of: id.rawValue, entries, fileID: fileID, line: line)
    }
}

extension VIOMMU {
    /// Whether the vIOMMU takes invalidations of `entryType`'s format: the documented probe,
    /// an array of no entries (the selftest vIOMMU answers 0 for its own type and `EINVAL`
    /// for any other; SMMUv3's refuses an empty array whatever its type).
    public func acceptsInvalidations<Entry: CacheInvalidation>(of entryType: Entry.Type, fileID: StaticString = #fileID,
                                                               line: Int = #line) -> Bool {
        (try? parent.ioas.iommufd.invalidateCaches(of: id.rawValue, [Entry](), fileID: fileID, line: line)) != nil
    }
}

extension HWPT {
    /// Allocates a vIOMMU of `type` for `device`'s IOMMU on this HWPT, which must be a
    /// ``PagingHWPTFlags/nestParent`` (`IOMMU_VIOMMU_ALLOC`), without driver data.
    ///
    /// - Throws: `EOPNOTSUPP` for a type the device's IOMMU does not offer, `EINVAL` when
    ///   this HWPT is not a nesting parent, `ENOENT` for an unknown device.
    public func allocateVIOMMU(for device: DeviceID, type: VIOMMUType,
                               fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> VIOMMU {
        let raw = unsafe try IOMMUFDIOCTL.viommuAlloc(ioas.seam, ioas.fd, device: device.rawValue, hwpt: id.rawValue, type: type.rawValue,
                                                      flags: 0, data: nil, fileID: fileID, line: line)
        return VIOMMU(parent: self, id: VIOMMUID(rawValue: raw), type: type)
    }

    /// As ``allocateVIOMMU(for:type:fileID:line:)`` with the driver's `data`; returns the
    /// vIOMMU and the data with the driver's answer read back.
    public func allocateVIOMMU<Data: VIOMMUData>(for device: DeviceID, data: Data,
                                                 fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> (VIOMMU, Data) {
        var layout = data.kernelLayout
        let raw = unsafe try withUnsafeMutableBytes(of: &layout) { (bytes) throws(IOMMUError) -> UInt32 in
            unsafe try IOMMUFDIOCTL.viommuAlloc(ioas.seam, ioas.fd, device: device.rawValue, hwpt: id.rawValue, type: Data.type.rawValue,
                                                flags: 0, data: bytes, fileID: fileID, line: line)
        }
        return (VIOMMU(parent: self, id: VIOMMUID(rawValue: raw), type: Data.type), Data(answer: layout))
    }
}
