import CIOMMUFD
public import IOMMUFD
import Logging
import SystemPackage

/// A HWPT a PASID can be attached to: paging or nested, never an IOAS (an IOAS's
/// automatic HWPT never takes PASIDs, so the type system refuses it).
public protocol PASIDTarget: AnyObject, Sendable {
    /// The HWPT's id.
    var id: HWPTID { get }
    /// Whether it was allocated PASID-capable (`IOMMU_HWPT_ALLOC_PASID`).
    var takesPASIDs: Bool { get }
}

extension HWPT: PASIDTarget {
    /// Allocated with `PagingHWPTFlags.pasid`.
    public var takesPASIDs: Bool { flags.contains(.pasid) }
}

extension NestedHWPT: PASIDTarget {
    /// Allocated with `NestedHWPTFlags.pasid`.
    public var takesPASIDs: Bool { flags.contains(.pasid) }
}

/// One PASID of a device attached to a HWPT: DMA the device tags with ``pasid`` goes
/// through ``pageTable``. The lease owns the attachment: ``replace(with:fileID:line:)``
/// moves it without a window, ``detach(fileID:line:)`` ends it, and dropping the lease
/// detaches it (best effort, logged). It keeps its HWPT alive.
public struct PASIDLease: ~Copyable, Sendable {
    /// The device.
    public let device: VFIODevice
    /// The PASID.
    public let pasid: PASID
    /// The HWPT the PASID is attached to now.
    public private(set) var pageTable: any PASIDTarget
    private var ended = false

    init(device: VFIODevice, pasid: PASID, pageTable: any PASIDTarget) {
        self.device = device
        self.pasid = pasid
        self.pageTable = pageTable
    }

    /// Moves the PASID to another HWPT without detaching it (VFIO turns a second attach of
    /// an attached PASID into a replace).
    ///
    /// - Throws: `EINVAL` without a system call when `target` does not take PASIDs.
    public mutating func replace(with target: some PASIDTarget, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        try device.checkPASIDTarget(target, fileID: fileID, line: line)
        let device = self.device, pasid = self.pasid
        _ = try device.naming { () throws(IOMMUError) in
            try VFIODeviceIOCTL.attach(device.seam, device.fd, pageTable: target.id.rawValue, pasid: pasid.rawValue, fileID: fileID, line: line)
        }
        pageTable = target
    }

    /// Detaches the PASID now and reports a failure.
    public consuming func detach(fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        ended = true
        try device.detachPASID(pasid, fileID: fileID, line: line)
    }

    deinit {
        guard !ended else { return }
        do {
            try device.detachPASID(pasid, fileID: #fileID, line: #line)
        } catch {
            device.logger.debug("detaching a PASID failed", metadata: ["pasid": "\(pasid.rawValue)", "error": "\(error)"])
        }
    }
}

extension VFIODevice {
    /// Attaches `pasid` of this device (bound through its cdev) to `target`, a HWPT
    /// allocated PASID-capable, and returns the lease that owns the attachment.
    ///
    /// Checked here before the kernel: the device takes PASIDs at all (its IOMMU reports a
    /// PASID width above 0: for a function without a PASID capability the kernel accepts
    /// the attach and ignores it, so a driver would believe in DMA that never happens),
    /// `pasid` is below `2^width`, `target` takes PASIDs, and the RID is not on a page table
    /// that does not (an IOAS's automatic HWPT, or a HWPT allocated without
    /// `PagingHWPTFlags.pasid`). Take PASIDs from a `PASIDSpace`.
    ///
    /// - Throws: `EOPNOTSUPP` when the device takes no PASIDs, `EINVAL` for the other
    ///   refusals (each with its explanation), or the kernel's error.
    public func attachPASID(_ pasid: PASID, to target: some PASIDTarget, fileID: StaticString = #fileID,
                            line: Int = #line) throws(IOMMUError) -> PASIDLease {
        guard let iommufd, let deviceID else {
            throw refusal(.invalidArgument, "the device is not bound to an iommufd", fix: "bind it first (VFIODevice.bind(to:))", fileID: fileID, line: line)
        }
        let width = Int(try iommufd.hardwareInfo(of: deviceID, fileID: fileID, line: line).maxPASIDLog2)
        guard width > 0 else {
            throw refusal(.notSupported, "the device takes no PASIDs (its IOMMU reports a PASID width of 0); the kernel would accept the attach and ignore it",
                          fix: "use the RID, or a function with a PASID capability behind an IOMMU with PASID support", fileID: fileID, line: line)
        }
        guard width >= 32 || UInt64(pasid.rawValue) < UInt64(1) << UInt64(width) else {
            throw refusal(.invalidArgument, "\(pasid) is past the device's \(width)-bit PASID width", fix: "take PASIDs from a PASIDSpace", fileID: fileID, line: line)
        }
        try checkPASIDTarget(target, fileID: fileID, line: line)
        if withMutableState({ $0.ridPASIDCompatible }) == false {
            throw refusal(.invalidArgument, "the RID is on a page table that does not take PASIDs beside it (an IOAS's automatic HWPT, or a HWPT without .pasid)",
                          fix: "attach the RID to a HWPT allocated with .pasid first", fileID: fileID, line: line)
        }
        _ = try naming { () throws(IOMMUError) in
            try VFIODeviceIOCTL.attach(seam, fd, pageTable: target.id.rawValue, pasid: pasid.rawValue, fileID: fileID, line: line)
        }
        withMutableState { $0.pasidLeases += 1 }
        return PASIDLease(device: self, pasid: pasid, pageTable: target)
    }

    /// Refuses a target that does not take PASIDs.
    func checkPASIDTarget(_ target: some PASIDTarget, fileID: StaticString, line: Int) throws(IOMMUError) {
        guard target.takesPASIDs else {
            throw refusal(.invalidArgument, "HWPT \(target.id.rawValue) was not allocated PASID-capable", fix: "allocate it with .pasid", fileID: fileID, line: line)
        }
    }

    /// Detaches a PASID and lets go of its lease.
    func detachPASID(_ pasid: PASID, fileID: StaticString, line: Int) throws(IOMMUError) {
        withMutableState { $0.pasidLeases -= 1 }
        try naming { () throws(IOMMUError) in try VFIODeviceIOCTL.detach(seam, fd, pasid: pasid.rawValue, fileID: fileID, line: line) }
    }

    /// An error raised here, before the kernel, with its explanation.
    func refusal(_ errno: Errno, _ meaning: String, fix: String, fileID: StaticString, line: Int) -> IOMMUError {
        var context = IOMMUErrorContext(path: path)
        context.advice = IOMMUErrorExplanation(meaning: meaning, fix: fix)
        return IOMMUError(.vfioDeviceAttachIOMMUFDPT, errno, context, fileID: fileID, line: line)
    }
}
