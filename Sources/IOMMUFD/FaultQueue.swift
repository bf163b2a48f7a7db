import CIOMMUFD
import Logging
import Synchronization
import SystemPackage

/// The access a faulting request asked for (`IOMMU_PGFAULT_PERM_*`).
public struct IOPageFaultPermissions: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    /// Creates the set from `IOMMU_PGFAULT_PERM_*` bits.
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// A read.
    public static let read = IOPageFaultPermissions(rawValue: IOMMU_PGFAULT_PERM_READ)
    /// A write.
    public static let write = IOPageFaultPermissions(rawValue: IOMMU_PGFAULT_PERM_WRITE)
    /// An instruction fetch.
    public static let execute = IOPageFaultPermissions(rawValue: IOMMU_PGFAULT_PERM_EXEC)
    /// A privileged-mode access.
    public static let privileged = IOPageFaultPermissions(rawValue: IOMMU_PGFAULT_PERM_PRIV)
}

/// One IO page fault read from a ``FaultQueue`` (`struct iommu_hwpt_pgfault`): a device's
/// DMA hit an IOVA its HWPT does not map (or maps without the access asked for), and the
/// device waits for the answer. The records of one page request group share a ``cookie``;
/// the group is answered once, with ``FaultQueue/respond(_:fileID:line:)``.
public struct IOPageFault: Sendable, Hashable {
    /// The device that faulted (its bound id).
    public var device: DeviceID
    /// The PASID the request carried, or `nil` for a request without one (the RID).
    public var pasid: UInt32?
    /// The page request group (`grpid`).
    public var group: UInt32
    /// The access asked for.
    public var permissions: IOPageFaultPermissions
    /// The faulting IOVA.
    public var address: UInt64
    /// Whether this is the group's last record (`IOMMU_PGFAULT_FLAGS_LAST_PAGE`).
    public var isLastInGroup: Bool
    /// The group's answer ticket, given when the group was read.
    public var cookie: UInt32
    /// The record's raw flags (drivers may set bits the uAPI does not name).
    public var rawFlags: UInt32

    /// The fault a kernel record describes.
    public init(_ record: iommu_hwpt_pgfault) {
        device = DeviceID(rawValue: record.dev_id)
        pasid = record.flags & IOMMU_PGFAULT_FLAGS_PASID_VALID != 0 ? record.pasid : nil
        group = record.grpid
        permissions = IOPageFaultPermissions(rawValue: record.perm)
        address = record.addr
        isLastInGroup = record.flags & IOMMU_PGFAULT_FLAGS_LAST_PAGE != 0
        cookie = record.cookie
        rawFlags = record.flags
    }
}

/// The answer to a page request group (`enum iommufd_page_response_code`).
public enum IOPageFaultResponse: UInt32, Sendable, Hashable {
    /// The fault is resolved: the device retries the access.
    case success = 0
    /// The fault cannot be resolved: the device's request fails.
    case invalid = 1
}

/// A queue of IO page faults (`IOMMU_FAULT_QUEUE_ALLOC`): HWPTs allocated with it send
/// their faults here instead of failing the device's request, and user space resolves them
/// (maps the page, for example) and answers. It owns its descriptor (close-on-exec) and its
/// kernel object; HWPTs allocated with it keep it alive.
///
/// Reading never blocks (an empty queue gives no faults): ``wait(timeout:fileID:line:)``
/// polls, and ``serve(timeout:fileID:line:_:)`` is the whole loop. A detach or a replace
/// of a HWPT answers its device's waiting groups `INVALID` by itself; their cookies are gone.
public final class FaultQueue: Sendable {
    /// The context it belongs to.
    public let iommufd: IOMMUFD
    /// The kernel's id, given to HWPT allocations.
    public let id: FaultID
    /// The queue's descriptor.
    public var fileDescriptor: FileDescriptor { FileDescriptor(rawValue: fd) }
    var fd: Int32 { descriptor.fd }
    private let descriptor: OwnedDescriptor
    private let destroyed = Atomic<Bool>(false)

    /// The size of one fault record.
    public static let recordSize = MemoryLayout<iommu_hwpt_pgfault>.size

    init(iommufd: IOMMUFD, id: FaultID, fd: Int32) {
        self.iommufd = iommufd
        self.id = id
        descriptor = OwnedDescriptor(fd, system: iommufd.system)
        iommufd.logger.debug("fault queue allocated", metadata: ["fault.id": "\(id.rawValue)", "fault.fd": "\(fd)"])
    }

    deinit {
        closeDescriptor()
        iommufd.destroyFromDeinit(id, unless: destroyed)
    }

    /// Closes the descriptor and destroys the queue now, reporting a failure.
    ///
    /// - Throws: `EBUSY` while a HWPT allocated with it still exists (the descriptor is
    ///   closed by then: faults still queue, nobody reads them).
    public func destroy(fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        closeDescriptor()
        try iommufd.destroyOnce(id, claiming: destroyed, fileID: fileID, line: line)
    }

    private func closeDescriptor() {
        do throws(Errno) { try descriptor.close() } catch {
            iommufd.logger.debug("closing a fault queue failed", metadata: ["fault.id": "\(id.rawValue)", "error": "\(error)"])
        }
    }

    /// The error of a call on the queue's descriptor.
    private func failure(_ operation: IOMMUOperation, _ errno: Errno, fileID: StaticString, line: Int) -> IOMMUError {
        var context = IOMMUErrorContext(objectID: id.rawValue)
        context.fileDescriptor = fd
        return IOMMUError(operation, errno, context, fileID: fileID, line: line)
    }

    /// Waits until a fault group is waiting to be read, at most `timeout` seconds (`nil`: no
    /// limit, 0: only look). Returns whether one is.
    public func wait(timeout: Double?, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> Bool {
        do throws(Errno) {
            return try descriptor.waitReadable(timeout: timeout)
        } catch {
            throw failure(.read, error, fileID: fileID, line: line)
        }
    }

    /// Reads the waiting fault groups, whole, up to `maximumRecords` records (at least one);
    /// never blocks (none waiting: an empty array). Each group read keeps its cookie until
    /// answered.
    ///
    /// - Throws: `EINVAL` when the first waiting group has more records than
    ///   `maximumRecords` (it stays queued; read again with more room).
    public func read(maximumRecords: Int = 64, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> [IOPageFault] {
        let capacity = max(1, maximumRecords)
        let records = UnsafeMutableBufferPointer<iommu_hwpt_pgfault>.allocate(capacity: capacity)
        defer { unsafe records.deallocate() }
        let bytes: Int
        do throws(Errno) {
            bytes = unsafe try iommufd.system.read(fd, into: UnsafeMutableRawBufferPointer(start: records.baseAddress, count: capacity * Self.recordSize))
        } catch {
            throw failure(.read, error, fileID: fileID, line: line)
        }
        return unsafe records.prefix(bytes / Self.recordSize).map(IOPageFault.init)
    }

    /// Answers page request groups by cookie, in order; returns how many were answered.
    ///
    /// - Throws: `EINVAL` when the first answer's cookie names no group read and not yet
    ///   answered (answered already, or answered `INVALID` by a detach or replace). When a
    ///   later answer is refused, the ones before it count and the rest are not sent.
    @discardableResult
    public func respond(_ answers: [(cookie: UInt32, response: IOPageFaultResponse)], fileID: StaticString = #fileID,
                        line: Int = #line) throws(IOMMUError) -> Int {
        guard !answers.isEmpty else { return 0 }
        let responses = answers.map { iommu_hwpt_page_response(cookie: $0.cookie, code: $0.response.rawValue) }
        let written = unsafe responses.withUnsafeBytes { raw in Result { () throws(Errno) -> Int in unsafe try iommufd.system.write(fd, from: raw) } }
        switch written {
        case .success(let bytes): return bytes / MemoryLayout<iommu_hwpt_page_response>.size
        case .failure(let error): throw failure(.write, error, fileID: fileID, line: line)
        }
    }

    /// The serving loop's one turn: waits up to `timeout` for faults, reads every waiting
    /// group, hands each record to `handler` (resolve it, for example map the page, and
    /// say how it went), and answers each group once: `SUCCESS` when every record of it
    /// succeeded, else `INVALID` (also when `handler` throws; the error is logged). Returns
    /// the number of groups answered (0 when none came in time).
    @discardableResult
    public func serve(timeout: Double?, fileID: StaticString = #fileID, line: Int = #line,
                      _ handler: (IOPageFault) throws -> IOPageFaultResponse) throws(IOMMUError) -> Int {
        guard try wait(timeout: timeout, fileID: fileID, line: line) else { return 0 }
        var answers: [(cookie: UInt32, response: IOPageFaultResponse)] = []
        while true {
            let faults = try read(fileID: fileID, line: line)
            guard !faults.isEmpty else { break }
            var verdicts: [UInt32: IOPageFaultResponse] = [:]
            var order: [UInt32] = []
            for fault in faults {
                if verdicts[fault.cookie] == nil { order.append(fault.cookie) }
                let verdict: IOPageFaultResponse
                do { verdict = try handler(fault) } catch {
                    iommufd.logger.debug("a fault handler failed", metadata: ["fault.id": "\(id.rawValue)", "error": "\(error)"])
                    verdict = .invalid
                }
                verdicts[fault.cookie] = verdicts[fault.cookie] == .invalid ? .invalid : verdict
            }
            answers += order.map { (cookie: $0, response: verdicts[$0]!) }
        }
        return try respond(answers, fileID: fileID, line: line)
    }
}

extension IOMMUFD {
    /// Allocates a fault queue (`IOMMU_FAULT_QUEUE_ALLOC`); give it to
    /// ``IOAS/allocateHWPT(for:flags:faultQueue:fileID:line:)`` or a nested allocation.
    public func allocateFaultQueue(fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> FaultQueue {
        let answer = try IOMMUFDIOCTL.faultQueueAlloc(seam, fd, fileID: fileID, line: line)
        return FaultQueue(iommufd: self, id: FaultID(rawValue: answer.id), fd: answer.fd)
    }
}
