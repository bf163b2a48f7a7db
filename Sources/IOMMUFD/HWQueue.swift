import CIOMMUFD
import Logging
import Synchronization

/// The kinds of hardware queue a vIOMMU can give a guest (`enum iommu_hw_queue_type`).
public enum HWQueueType: Sendable, Hashable {
    /// NVIDIA Tegra241 CMDQV's virtual command queue (`IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV`).
    case tegra241CMDQV
    /// The kernel selftest's mock queue (`IOMMU_HW_QUEUE_TYPE_SELFTEST`).
    case selftest
    /// Any other number, as the kernel would be asked (0 is refused with `EOPNOTSUPP`).
    case other(UInt32)

    /// The kernel's type number.
    public var rawValue: UInt32 {
        switch self {
        case .tegra241CMDQV: IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV
        case .selftest: IOMMU_HW_QUEUE_TYPE_SELFTEST
        case .other(let value): value
        }
    }
}

/// A hardware queue of a vIOMMU (`IOMMU_HW_QUEUE_ALLOC`): guest memory, at an IOVA of the
/// nesting parent, that the physical IOMMU reads commands from directly. The kernel pins
/// that memory for the queue's life, so unmapping it from the IOAS is `EBUSY` until the
/// queue is destroyed. Queues above index 0 hold the one below them: destroy in
/// descending order. It keeps the vIOMMU alive and is destroyed, best effort, when the
/// last reference goes.
public final class HWQueue: Sendable {
    /// The vIOMMU it belongs to.
    public let viommu: VIOMMU
    /// The kernel's id.
    public let id: HWQueueID
    /// Its type.
    public let type: HWQueueType
    /// Its index among the vIOMMU's queues.
    public let index: UInt32
    /// Where the queue memory is, in the nesting parent's IOAS.
    public let iova: IOVA
    /// Its length in bytes.
    public let length: UInt64
    private let destroyed = Atomic<Bool>(false)

    init(viommu: VIOMMU, id: HWQueueID, type: HWQueueType, index: UInt32, iova: IOVA, length: UInt64) {
        self.viommu = viommu
        self.id = id
        self.type = type
        self.index = index
        self.iova = iova
        self.length = length
        viommu.parent.ioas.iommufd.logger.debug("HW queue allocated", metadata: ["hw_queue.id": "\(id.rawValue)", "index": "\(index)"])
    }

    deinit {
        viommu.parent.ioas.iommufd.destroyFromDeinit(id, unless: destroyed)
    }

    /// Destroys the queue now (its memory is unpinned) and reports a failure.
    ///
    /// - Throws: `EBUSY` while a queue of a higher index holds it.
    public func destroy(fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        try viommu.parent.ioas.iommufd.destroyOnce(id, claiming: destroyed, fileID: fileID, line: line)
    }
}

extension VIOMMU {
    /// Allocates hardware queue `index` of `type` over `[iova, iova + length)` of the
    /// nesting parent's IOAS (`IOMMU_HW_QUEUE_ALLOC`); the range must be mapped and readable.
    ///
    /// - Throws: `EOPNOTSUPP` for a type the vIOMMU has no queues of, `EINVAL` for length 0
    ///   or an index the driver refuses, `EOVERFLOW` for a range past 2^64, `ENOENT` when
    ///   part of the range is not mapped, `EPERM` when it is not readable, `EEXIST` for a
    ///   taken index (and drivers' own rules: the selftest's wants index 0 before 1, `EIO`).
    public func allocateHWQueue(type: HWQueueType, index: UInt32, iova: IOVA, length: UInt64,
                                fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> HWQueue {
        let iommufd = parent.ioas.iommufd
        let raw = try IOMMUFDIOCTL.hwQueueAlloc(iommufd.seam, iommufd.fd, viommu: id.rawValue, type: type.rawValue, index: index,
                                                iova: iova.rawValue, length: length, fileID: fileID, line: line)
        return HWQueue(viommu: self, id: HWQueueID(rawValue: raw), type: type, index: index, iova: iova, length: length)
    }
}
