import CIOMMUFD
public import IOMMUFD
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

extension VFIODevice {
    // MARK: iommufd

    /// Binds the device to an iommufd (`VFIO_DEVICE_BIND_IOMMUFD`); afterwards the
    /// device is owned by this process and can be attached to that iommufd's page tables.
    ///
    /// - Throws: `EINVAL` when already bound (also through another descriptor), `EBUSY`
    ///   when its group is in use through the legacy path, `EPERM` without interrupt
    ///   remapping.
    @discardableResult
    public func bind(
        to iommufd: IOMMUFD, virtualFunctionToken: VFToken? = nil, fileID: StaticString = #fileID, line: Int = #line
    ) throws(IOMMUError) -> IOMMUObjectID<DeviceObject> {
        guard openedThrough == .iommufdCdev else {
            throw IOMMUError(.vfioDeviceBindIOMMUFD, .inappropriateIOCTLForDevice, IOMMUErrorContext(path: path), fileID: fileID, line: line)
        }
        var token: (UInt64, UInt64) = (0, 0)
        let deviceID = unsafe try withUnsafeMutableBytes(of: &token) { (tokenBytes) throws(IOMMUError) -> UInt32 in
            var tokenAddress: UInt64 = 0
            if let virtualFunctionToken {
                unsafe tokenBytes.copyBytes(from: virtualFunctionToken.bytes)
                tokenAddress = UInt64(UInt(bitPattern: tokenBytes.baseAddress))
            }
            return try naming { () throws(IOMMUError) in
                try VFIODeviceIOCTL.bind(seam, fd, iommufd: iommufd.fileDescriptor.rawValue, token: tokenAddress, fileID: fileID, line: line)
            }
        }
        self.iommufd = iommufd
        let id = IOMMUObjectID<DeviceObject>(rawValue: deviceID)
        self.deviceID = id
        return id
    }

    /// Attaches the device to an IOAS (the kernel finds or makes a compatible HWPT) and
    /// returns the HWPT it is now attached to. Attaching again replaces the page table
    /// without a window where DMA is blocked.
    ///
    /// - Throws: `EINVAL` without a system call while PASID leases are alive: an IOAS's
    ///   automatic HWPT never takes PASIDs beside the RID.
    @discardableResult
    public func attach(to ioas: IOAS, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> HWPTID {
        try refuseRIDMoveWhilePASIDs(compatible: false, fileID: fileID, line: line)
        let hwpt = try attach(pageTable: try ioas.liveID(.vfioDeviceAttachIOMMUFDPT, fileID: fileID, line: line), fileID: fileID, line: line)
        attachedIOAS = ioas
        withMutableState { $0.ridPASIDCompatible = false }
        return hwpt
    }

    /// Attaches the device's RID to a HWPT it allocated (or replaces the RID's page table
    /// with it), remembering whether the HWPT takes PASIDs beside the RID.
    ///
    /// - Throws: `EINVAL` without a system call when PASID leases are alive and `hwpt` was
    ///   not allocated with `PagingHWPTFlags.pasid` (the kernel would refuse the same).
    @discardableResult
    public func attach(to hwpt: HWPT, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> HWPTID {
        let compatible = hwpt.flags.contains(.pasid)
        try refuseRIDMoveWhilePASIDs(compatible: compatible, fileID: fileID, line: line)
        let attached = try attach(pageTable: hwpt.id.rawValue, fileID: fileID, line: line)
        withMutableState { $0.ridPASIDCompatible = compatible }
        return attached
    }

    /// The Swift side of the kernel's rule that the RID stays on a PASID-compatible HWPT
    /// while PASIDs are attached.
    func refuseRIDMoveWhilePASIDs(compatible: Bool, fileID: StaticString, line: Int) throws(IOMMUError) {
        let leases = withMutableState { $0.pasidLeases }
        guard leases > 0, !compatible else { return }
        var context = IOMMUErrorContext(path: path)
        context.advice = IOMMUErrorExplanation(
            meaning: "\(leases) PASID lease(s) are alive, and the RID's new page table does not take PASIDs beside it (an IOAS's automatic HWPT never does)",
            fix: "move the RID to a HWPT allocated with .pasid, or detach the PASIDs first")
        throw IOMMUError(.vfioDeviceAttachIOMMUFDPT, .invalidArgument, context, fileID: fileID, line: line)
    }

    /// Attaches the device to an explicit HWPT.
    @discardableResult
    public func attach(to hwpt: HWPTID, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> HWPTID {
        try attach(pageTable: hwpt.rawValue, fileID: fileID, line: line)
    }

    /// Attaches to a page table given by its raw id (IOAS or HWPT).
    @discardableResult
    public func attach(pageTable rawID: UInt32, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> HWPTID {
        let hwpt = HWPTID(rawValue: try naming { () throws(IOMMUError) in
            try VFIODeviceIOCTL.attach(seam, fd, pageTable: rawID, fileID: fileID, line: line)
        })
        attachedPageTable = hwpt
        attachedIOAS = nil
        withMutableState { $0.ridPASIDCompatible = nil }
        return hwpt
    }

    /// Detaches the device from its page table; its DMA is blocked afterwards.
    public func detach(fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        try naming { () throws(IOMMUError) in try VFIODeviceIOCTL.detach(seam, fd, fileID: fileID, line: line) }
        attachedPageTable = nil
        attachedIOAS = nil
    }
}
