import CIOMMUFD
import Logging
import Synchronization
import SystemPackage

/// The kinds of event a vIOMMU reports (`enum iommu_veventq_type`), each with the size of
/// its record after the header.
public enum VEventQueueType: Sendable, Hashable {
    /// SMMUv3 event queue entries (`struct iommu_vevent_arm_smmuv3`, 32 bytes).
    case armSMMUv3
    /// Tegra241 CMDQV errors (`struct iommu_vevent_tegra241_cmdqv`, 16 bytes).
    case tegra241CMDQV
    /// The kernel selftest's event: the device's virtual id (`struct iommu_viommu_event_selftest`, 4 bytes).
    case selftest
    /// Any other type, with the length of its records.
    case other(UInt32, recordLength: Int)

    /// The kernel's type number.
    public var rawValue: UInt32 {
        switch self {
        case .armSMMUv3: IOMMU_VEVENTQ_TYPE_ARM_SMMUV3
        case .tegra241CMDQV: IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV
        case .selftest: IOMMU_VEVENTQ_TYPE_SELFTEST
        case .other(let value, _): value
        }
    }

    /// The bytes of one event after its header.
    public var recordLength: Int {
        switch self {
        case .armSMMUv3: MemoryLayout<iommu_vevent_arm_smmuv3>.size
        case .tegra241CMDQV: MemoryLayout<iommu_vevent_tegra241_cmdqv>.size
        case .selftest: MemoryLayout<iommu_viommu_event_selftest>.size
        case .other(_, let length): length
        }
    }
}

/// One record read from a ``VEventQueue``.
public enum VEvent: Sendable, Hashable {
    /// An event: its sequence number and the type's record (for example an SMMUv3 event
    /// entry, or the selftest's virtual id), as bytes.
    case event(sequence: UInt32, data: [UInt8])
    /// Events were lost because the queue was full; `sequence` is the last one lost.
    case lost(sequence: UInt32)

    /// The record's sequence number (they count up, wrapping from `Int32.max` to 0).
    public var sequence: UInt32 {
        switch self {
        case .event(let sequence, _), .lost(let sequence): sequence
        }
    }
}

/// A vIOMMU's event queue of one type (`IOMMU_VEVENTQ_ALLOC`): what the physical IOMMU
/// reports for the guest's devices (an SMMUv3 event such as a translation fault on a
/// nested stage-1 table), for the VMM to forward into the guest's own event queue. Past
/// ``depth`` events, the kernel keeps one lost-events record instead. It owns its
/// descriptor (close-on-exec) and its object; it keeps the vIOMMU alive.
///
/// Reading never blocks: ``wait(timeout:fileID:line:)`` polls. A gap in the sequence
/// numbers also means lost events.
public final class VEventQueue: Sendable {
    /// The vIOMMU it belongs to.
    public let viommu: VIOMMU
    /// The kernel's id.
    public let id: VEventQueueID
    /// The type of events it takes.
    public let type: VEventQueueType
    /// How many events it holds before it loses some.
    public let depth: UInt32
    /// The queue's descriptor.
    public var fileDescriptor: FileDescriptor { FileDescriptor(rawValue: fd) }
    var fd: Int32 { descriptor.fd }
    private let descriptor: OwnedDescriptor
    private let destroyed = Atomic<Bool>(false)

    init(viommu: VIOMMU, id: VEventQueueID, type: VEventQueueType, depth: UInt32, fd: Int32) {
        self.viommu = viommu
        self.id = id
        self.type = type
        self.depth = depth
        descriptor = OwnedDescriptor(fd, system: viommu.parent.ioas.iommufd.system)
        viommu.parent.ioas.iommufd.logger.debug("vEVENTQ allocated", metadata: ["veventq.id": "\(id.rawValue)", "veventq.fd": "\(fd)"])
    }

    deinit {
        closeDescriptor()
        viommu.parent.ioas.iommufd.destroyFromDeinit(id, unless: destroyed)
    }

    private var iommufd: IOMMUFD { viommu.parent.ioas.iommufd }

    /// Closes the descriptor and destroys the queue now (the kernel refuses while the
    /// descriptor is open), reporting a failure.
    public func destroy(fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        closeDescriptor()
        try iommufd.destroyOnce(id, claiming: destroyed, fileID: fileID, line: line)
    }

    private func closeDescriptor() {
        do throws(Errno) { try descriptor.close() } catch {
            iommufd.logger.debug("closing a vEVENTQ failed", metadata: ["veventq.id": "\(id.rawValue)", "error": "\(error)"])
        }
    }

    private func failure(_ errno: Errno, fileID: StaticString, line: Int) -> IOMMUError {
        var context = IOMMUErrorContext(objectID: id.rawValue)
        context.fileDescriptor = fd
        return IOMMUError(.read, errno, context, fileID: fileID, line: line)
    }

    /// Waits until a record is waiting, at most `timeout` seconds (`nil`: no limit, 0: only
    /// look). Returns whether one is.
    public func wait(timeout: Double?, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> Bool {
        do throws(Errno) {
            return try descriptor.waitReadable(timeout: timeout)
        } catch {
            throw failure(error, fileID: fileID, line: line)
        }
    }

    /// Reads the waiting records, up to `maximumEvents` events; never blocks (none waiting:
    /// an empty array).
    public func read(maximumEvents: Int = 64, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> [VEvent] {
        let header = MemoryLayout<iommufd_vevent_header>.size
        let capacity = max(1, maximumEvents) * (header + type.recordLength)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 8)
        defer { unsafe buffer.deallocate() }
        let bytes: Int
        do throws(Errno) { bytes = unsafe try iommufd.system.read(fd, into: buffer) } catch {
            throw failure(error, fileID: fileID, line: line)
        }
        var events: [VEvent] = []
        var offset = 0
        while offset + header <= bytes {
            let flags = unsafe buffer.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
            let sequence = unsafe buffer.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
            offset += header
            if flags & IOMMU_VEVENTQ_FLAG_LOST_EVENTS != 0 {
                events.append(.lost(sequence: sequence))
            } else {
                let end = min(bytes, offset + type.recordLength)
                events.append(.event(sequence: sequence, data: unsafe Array(buffer[offset..<end])))
                offset = end
            }
        }
        return events
    }
}

extension VIOMMU {
    /// Allocates this vIOMMU's event queue for `type`, holding up to `depth` events
    /// (`IOMMU_VEVENTQ_ALLOC`).
    ///
    /// - Throws: `EEXIST` when the vIOMMU has a queue of that type, `EINVAL` for a depth
    ///   of 0 or past 2^19, `EOPNOTSUPP` for the type number 0.
    public func allocateEventQueue(type: VEventQueueType, depth: UInt32,
                                   fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> VEventQueue {
        let iommufd = parent.ioas.iommufd
        let answer = try IOMMUFDIOCTL.veventqAlloc(iommufd.seam, iommufd.fd, viommu: id.rawValue, type: type.rawValue, depth: depth,
                                                   fileID: fileID, line: line)
        return VEventQueue(viommu: self, id: VEventQueueID(rawValue: answer.id), type: type, depth: depth, fd: answer.fd)
    }
}
