import CIOMMUFD
import SystemPackage

extension IOMMUFD {
    /// Whether the kernel implements `command`, by the documented probe contract:
    /// a call with `size = 0` fails with `EINVAL` for a known command and `ENOTTY` for an unknown one.
    ///
    /// - Throws: any other errno (for example `EFAULT`), which means the probe itself went wrong.
    public func supports(_ command: IOMMUOperation, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> Bool {
        try IOMMUFDIOCTL.probe(seam, fd, command, fileID: fileID, line: line)
    }

    /// Every iommufd command 0x80-0x95 (`IOMMUOperation.iommufdCommands`) this kernel implements.
    public func supportedCommands() throws(IOMMUError) -> Set<IOMMUOperation> {
        var supported: Set<IOMMUOperation> = []
        for command in IOMMUOperation.iommufdCommands where try supports(command) {
            supported.insert(command)
        }
        return supported
    }

    /// What the IOMMU behind a bound device is and can do (`IOMMU_GET_HW_INFO`), decoded.
    /// With `kind`, asks for that vendor structure (`IOMMU_HW_INFO_FLAG_INPUT_TYPE`: an
    /// IOMMU that serves several, such as SMMUv3 with Tegra241 CMDQV); without, the
    /// driver's default.
    ///
    /// - Throws: `ENOENT` for an unknown device, `EOPNOTSUPP` for a kind the driver does not serve.
    public func hardwareInfo(of device: DeviceID, kind: HardwareInfo.Kind? = nil,
                             fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> HardwareInfo {
        // Room for the largest vendor structure (SMMUv3: 40 bytes) and more.
        var room = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        return unsafe try withUnsafeMutableBytes(of: &room) { (bytes) throws(IOMMUError) -> HardwareInfo in
            let answer = unsafe try IOMMUFDIOCTL.getHardwareInfo(seam, fd, device: device.rawValue,
                                                          flags: kind == nil ? 0 : IOMMU_HW_INFO_FLAG_INPUT_TYPE,
                                                          dataType: kind?.rawValue ?? 0, into: bytes, fileID: fileID, line: line)
            let written = unsafe Array(UnsafeRawBufferPointer(bytes).prefix(Int(answer.dataLength)))
            return HardwareInfo(kind: HardwareInfo.Kind(rawValue: answer.dataType), data: written,
                                capabilities: answer.capabilities, maxPASIDLog2: answer.maxPASIDLog2)
        }
    }

    /// How pinned pages are charged against `RLIMIT_MEMLOCK`.
    public enum AccountingMode: UInt64, Sendable {
        /// Charged to the user (all processes of a user share one budget): the kernel default.
        case user = 0
        /// Charged to the process (`mm->locked_vm`, pages.c:983-1008), the budget VFIO type1 charges too.
        case process = 1
    }

    /// Moves the pinned-page accounting of every mapping in every IOAS of this context to
    /// the calling process (`IOMMU_IOAS_CHANGE_PROCESS`): its memlock limit and `VmPin` take
    /// them, the old owner's let go. For a driver handed the iommufd by another process
    /// (over a socket, or across a `fork`): in a child, adopt the inherited descriptor with
    /// ``init(adopting:system:closeOnDeinit:logger:)`` first. In the same process it
    /// succeeds and changes nothing.
    ///
    /// - Throws: `EINVAL` when a mapping does not come from a memfd
    ///   (``IOAS/mapFile(fileDescriptor:offset:length:at:access:fileID:line:)``): user memory and dma-bufs
    ///   stay with the process that mapped them; `ENOMEM` when the caller's
    ///   `RLIMIT_MEMLOCK` cannot take the pages (the kernel charges the new owner before it
    ///   lets the old one go, so after a `fork` the same user needs room for twice them);
    ///   `EBUSY` while a map or unmap is under way. On failure nothing moves.
    public func changeProcess(fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        try IOMMUFDIOCTL.changeProcess(seam, fd, fileID: fileID, line: line)
    }

    /// The context's accounting mode. The corresponding ioctl is `IOMMU_OPTION` with `IOMMU_OPTION_RLIMIT_MODE`.
    public func accountingMode(fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> AccountingMode {
        let value = try IOMMUFDIOCTL.option(seam, fd, option: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET,
                                            object: 0, value: 0, fileID: fileID, line: line)
        return AccountingMode(rawValue: value) ?? .user
    }

    /// Sets the accounting mode; needs `CAP_SYS_RESOURCE` and a context with no objects yet.
    ///
    /// - Throws: `EPERM` without the capability, `EBUSY` when objects exist.
    public func setAccountingMode(_ mode: AccountingMode, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        try setOption(IOMMU_OPTION_RLIMIT_MODE, objectID: 0, value: mode.rawValue, fileID: fileID, line: line)
    }

    /// Sets a raw `IOMMU_OPTION` value (for options and values this layer does not model).
    public func setOption(_ optionID: UInt32, objectID: UInt32, value: UInt64, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        _ = try IOMMUFDIOCTL.option(seam, fd, option: optionID, op: IOMMU_OPTION_OP_SET,
                                    object: objectID, value: value, fileID: fileID, line: line)
    }
}
