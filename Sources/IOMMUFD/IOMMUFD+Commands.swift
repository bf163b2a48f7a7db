import CIOMMUFD
import SystemPackage

/// One iommufd command (ioctl number 0x80 + n) as the kernel names it.
public enum IOMMUCommand: UInt32, Sendable, Hashable, CaseIterable, Comparable, CustomStringConvertible {
    case destroy = 0x80
    case ioasAlloc = 0x81
    case ioasAllowIOVAs = 0x82
    case ioasCopy = 0x83
    case ioasIOVARanges = 0x84
    case ioasMap = 0x85
    case ioasUnmap = 0x86
    case option = 0x87
    case vfioIOAS = 0x88
    case hwptAlloc = 0x89
    case getHWInfo = 0x8a
    case hwptSetDirtyTracking = 0x8b
    case hwptGetDirtyBitmap = 0x8c
    case hwptInvalidate = 0x8d
    case faultQueueAlloc = 0x8e
    case ioasMapFile = 0x8f
    case viommuAlloc = 0x90
    case vdeviceAlloc = 0x91
    case ioasChangeProcess = 0x92
    case veventqAlloc = 0x93
    case hwQueueAlloc = 0x94
    case ioasNoIOMMUGetPA = 0x95

    /// The ioctl request number, `_IO(';', nr)`.
    public var request: UInt { UInt(0x3b00) | UInt(rawValue) }

    /// The kernel's name, e.g. `IOMMU_IOAS_MAP`.
    public var name: String { operation.name }

    /// The matching operation name used in errors.
    public var operation: IOMMUOperation {
        switch self {
        case .destroy: .destroy
        case .ioasAlloc: .ioasAlloc
        case .ioasAllowIOVAs: .ioasAllowIOVAs
        case .ioasCopy: .ioasCopy
        case .ioasIOVARanges: .ioasIOVARanges
        case .ioasMap: .ioasMap
        case .ioasUnmap: .ioasUnmap
        case .option: .option
        case .vfioIOAS: .vfioIOAS
        case .hwptAlloc: .hwptAlloc
        case .getHWInfo: .getHWInfo
        case .hwptSetDirtyTracking: .hwptSetDirtyTracking
        case .hwptGetDirtyBitmap: .hwptGetDirtyBitmap
        case .hwptInvalidate: .hwptInvalidate
        case .faultQueueAlloc: .faultQueueAlloc
        case .ioasMapFile: .ioasMapFile
        case .viommuAlloc: .viommuAlloc
        case .vdeviceAlloc: .vdeviceAlloc
        case .ioasChangeProcess: .ioasChangeProcess
        case .veventqAlloc: .veventqAlloc
        case .hwQueueAlloc: .hwQueueAlloc
        case .ioasNoIOMMUGetPA: .ioasNoIOMMUGetPA
        }
    }

    public static func < (lhs: IOMMUCommand, rhs: IOMMUCommand) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { name }
}

extension IOMMUFD {
    /// Whether the kernel implements `command`, by the documented probe contract:
    /// a call with `size = 0` fails with `EINVAL` for a known command and `ENOTTY` for an unknown one.
    ///
    /// - Throws: any other errno (for example `EFAULT`), which means the probe itself went wrong.
    public func supports(_ command: IOMMUCommand, fileID: String = #fileID, line: Int = #line) throws(IOMMUError) -> Bool {
        // Enough zeroed room for the largest command, so a kernel that reads past
        // `size` never reads outside our buffer.
        var probe = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        do {
            try perform(command.request, &probe, command.operation, IOMMUErrorContext(), fileID: fileID, line: line)
        } catch let error where error.errno == .invalidArgument {
            return true
        } catch let error where error.errno == .inappropriateIOCTLForDevice {
            return false
        }
        // A size-0 command can never succeed; treat success as "present but odd".
        return true
    }

    /// Every iommufd command 0x80-0x95 this kernel implements.
    public func supportedCommands() throws(IOMMUError) -> Set<IOMMUCommand> {
        var supported: Set<IOMMUCommand> = []
        for command in IOMMUCommand.allCases where try supports(command) {
            supported.insert(command)
        }
        return supported
    }

    /// How pinned pages are charged against `RLIMIT_MEMLOCK`.
    public enum AccountingMode: UInt64, Sendable {
        /// Charged to the user (all processes of a user share one budget): the kernel default.
        case user = 0
        /// Charged to the process (`mm->pinned_vm`), like VFIO type1.
        case process = 1
    }

    /// The context's accounting mode. The corresponding ioctl is `IOMMU_OPTION` with `IOMMU_OPTION_RLIMIT_MODE`.
    public func accountingMode(fileID: String = #fileID, line: Int = #line) throws(IOMMUError) -> AccountingMode {
        var command = iommu_option()
        command.size = UInt32(MemoryLayout<iommu_option>.size)
        command.option_id = IOMMU_OPTION_RLIMIT_MODE
        command.op = IOMMU_OPTION_OP_GET
        try perform(IOMMU_OPTION, &command, .option, IOMMUErrorContext(), fileID: fileID, line: line)
        return AccountingMode(rawValue: command.val64) ?? .user
    }

    /// Sets the accounting mode; needs `CAP_SYS_RESOURCE` and a context with no objects yet.
    ///
    /// - Throws: `EPERM` without the capability, `EBUSY` when objects exist.
    public func setAccountingMode(_ mode: AccountingMode, fileID: String = #fileID, line: Int = #line) throws(IOMMUError) {
        try setOption(IOMMU_OPTION_RLIMIT_MODE, objectID: 0, value: mode.rawValue, fileID: fileID, line: line)
    }

    /// Sets a raw `IOMMU_OPTION` value (for options and values this layer does not model).
    public func setOption(_ optionID: UInt32, objectID: UInt32, value: UInt64, fileID: String = #fileID, line: Int = #line) throws(IOMMUError) {
        var command = iommu_option()
        command.size = UInt32(MemoryLayout<iommu_option>.size)
        command.option_id = optionID
        command.op = IOMMU_OPTION_OP_SET
        command.object_id = objectID
        command.val64 = value
        try perform(IOMMU_OPTION, &command, .option, IOMMUErrorContext(objectID: objectID), fileID: fileID, line: line)
    }
}
