import CIOMMUFD
import IOMMUFD
import SystemPackage
import VFIO
#if canImport(Glibc)
import Glibc
#endif

// Scenario verbs for the legacy VFIO path: container, group, group_status, set_container,
// unset_container, set_iommu, extension, group_device, dma_map, dma_unmap; and config, a
// read of a device's configuration space through either path's descriptor.
extension ScenarioExecutor {
    /// `container NAME`: opens `/dev/vfio/vfio`.
    func openContainer(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 1 else { throw session.fail("container NAME") }
        session.containers[step.words[0]] = try session.system.open("/dev/vfio/vfio", flags: O_RDWR, mode: 0)
        return Outcome(outputs: [:])
    }

    /// `group NAME NUMBER`: opens `/dev/vfio/NUMBER`.
    func openGroup(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("group NAME NUMBER") }
        let number = UInt32(try session.number(step.words[1]))
        session.groups[step.words[0]] = (try session.system.open("/dev/vfio/\(number)", flags: O_RDWR, mode: 0), number)
        return Outcome(outputs: [:])
    }

    /// `group_status GROUP`: `VFIO_GROUP_GET_STATUS`; outputs `flags` (1 viable, 2 container set).
    func groupStatus(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 1 else { throw session.fail("group_status GROUP") }
        let group = try session.group(step.words[0])
        let flags = try VFIOGroupIOCTL.getStatus(session.seam, group.fd, group: group.number, fileID: #fileID, line: step.line)
        return Outcome(outputs: ["flags": ScenarioSession.hex(UInt64(flags))])
    }

    /// `set_container GROUP CONTAINER`: `VFIO_GROUP_SET_CONTAINER`.
    func setContainer(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("set_container GROUP CONTAINER") }
        let group = try session.group(step.words[0])
        try VFIOGroupIOCTL.setContainer(session.seam, group.fd, group: group.number, container: try session.container(step.words[1]),
                                        fileID: #fileID, line: step.line)
        return Outcome(outputs: [:])
    }

    /// `unset_container GROUP`: `VFIO_GROUP_UNSET_CONTAINER`.
    func unsetContainer(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 1 else { throw session.fail("unset_container GROUP") }
        let group = try session.group(step.words[0])
        try VFIOGroupIOCTL.unsetContainer(session.seam, group.fd, group: group.number, fileID: #fileID, line: step.line)
        return Outcome(outputs: [:])
    }

    /// `set_iommu CONTAINER TYPE`: `VFIO_SET_IOMMU` (1 type1, 3 type1v2, 8 no-IOMMU).
    func setIOMMU(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("set_iommu CONTAINER TYPE") }
        try VFIOContainerIOCTL.setIOMMU(session.seam, try session.container(step.words[0]), UInt(try session.number(step.words[1])),
                                        fileID: #fileID, line: step.line)
        return Outcome(outputs: [:])
    }

    /// `extension CONTAINER N`: `VFIO_CHECK_EXTENSION`; outputs `value`.
    func checkExtension(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("extension CONTAINER N") }
        let value = try VFIOContainerIOCTL.checkExtension(session.seam, try session.container(step.words[0]), UInt(try session.number(step.words[1])),
                                                          fileID: #fileID, line: step.line)
        return Outcome(outputs: ["value": "\(value)"])
    }

    /// `group_device NAME GROUP BDF`: `VFIO_GROUP_GET_DEVICE_FD`; the descriptor is device NAME.
    func groupDevice(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 3 else { throw session.fail("group_device NAME GROUP BDF") }
        let group = try session.group(step.words[1])
        let fd = try VFIOGroupIOCTL.getDeviceFD(session.seam, group.fd, group: group.number, name: step.words[2], fileID: #fileID, line: step.line)
        session.devices[step.words[0]] = fd
        return Outcome(outputs: [:])
    }

    /// `dma_map CONTAINER BUFFER iova= [offset=] [length=] [access=]`: `VFIO_IOMMU_MAP_DMA`.
    func mapDMA(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("dma_map CONTAINER BUFFER iova=") }
        let buffer = try session.buffer(step.words[1])
        let offset = try session.argument(step, "offset", default: 0)
        let access = try session.accessFlags(step)
        let flags = (access & IOMMU_IOAS_MAP_READABLE != 0 ? VFIO_DMA_MAP_FLAG_READ : 0) | (access & IOMMU_IOAS_MAP_WRITEABLE != 0 ? VFIO_DMA_MAP_FLAG_WRITE : 0)
        try VFIOContainerIOCTL.mapDMA(session.seam, try session.container(step.words[0]), flags: flags,
                                      userAddress: UInt64(UInt(bitPattern: buffer.baseAddress)) &+ offset, iova: try session.argument(step, "iova"),
                                      size: try session.argument(step, "length", default: UInt64(buffer.count) &- offset), fileID: #fileID, line: step.line)
        return Outcome(outputs: [:])
    }

    /// `dma_unmap CONTAINER iova= length=`: `VFIO_IOMMU_UNMAP_DMA`; outputs `length`, the bytes unmapped.
    func unmapDMA(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 1 else { throw session.fail("dma_unmap CONTAINER iova= length=") }
        let unmapped = try VFIOContainerIOCTL.unmapDMA(session.seam, try session.container(step.words[0]), flags: 0,
                                                       iova: try session.argument(step, "iova"), size: try session.argument(step, "length"),
                                                       fileID: #fileID, line: step.line)
        return Outcome(outputs: ["length": ScenarioSession.hex(unmapped)])
    }

    /// `config DEVICE OFFSET [width=1|2|4]`: reads configuration space through the device
    /// descriptor (`pread` of region 7); outputs `value`.
    func readConfiguration(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("config DEVICE OFFSET") }
        let width = Int(try session.argument(step, "width", default: 2))
        guard [1, 2, 4].contains(width) else { throw session.fail("width=1, 2 or 4") }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4, alignment: 4)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        let offset = Int64(VFIO_PCI_CONFIG_REGION_INDEX) << 40 | Int64(try session.number(step.words[1]))
        let read = try session.system.pread(try session.device(step.words[0]), into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<width]), offset: offset)
        var value: UInt64 = 0
        for index in 0..<read { value |= UInt64(buffer[index]) << (8 * UInt64(index)) }
        return Outcome(outputs: ["value": ScenarioSession.hex(value), "read": "\(read)"])
    }

    /// `dmabuf NAME DEVICE [bar=N] [offset=] [length=] [ranges=K] [flags=] [feature=get|set|probe|getset]
    /// [argsz=]`: `VFIO_DEVICE_FEATURE_DMA_BUF`, K ranges of `length` bytes from `offset`, one
    /// after the other (1, the whole length by default); binds NAME to the dma-buf's
    /// descriptor like a memfd (for `mapfile` and `close`).
    func exportDMABuf(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("dmabuf NAME DEVICE [bar=] [offset=] length=") }
        let count = Int(try session.argument(step, "ranges", default: 1))
        let offset = try session.argument(step, "offset", default: 0)
        let length = try session.argument(step, "length")
        let ranges = (0..<count).map { (offset: offset &+ UInt64($0) &* length, length: length) }
        let featureFlags: UInt32 = switch step.arguments["feature"] ?? "get" {
        case "set": VFIO_DEVICE_FEATURE_SET
        case "probe": VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET
        case "getset": VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET
        default: VFIO_DEVICE_FEATURE_GET
        }
        let fd = try VFIODeviceIOCTL.exportDMABuf(
            session.seam, try session.device(step.words[1]), region: UInt32(truncatingIfNeeded: try session.argument(step, "bar", default: 0)),
            ranges: ranges, openFlags: UInt32(O_RDWR | O_CLOEXEC), flags: UInt32(truncatingIfNeeded: try session.argument(step, "flags", default: 0)),
            featureFlags: featureFlags, argumentSize: try step.arguments["argsz"].map { UInt32(truncatingIfNeeded: try session.number($0)) },
            fileID: #fileID, line: step.line)
        if fd > 0 { session.memoryFiles[step.words[0]] = fd }
        return Outcome(outputs: ["fd": fd > 0 ? "yes" : "none"])
    }

    /// `region_write DEVICE INDEX OFFSET value=V [width=1|2|4]`: writes through the device
    /// descriptor (`pwrite` at region INDEX); outputs `written`.
    func writeRegion(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 3 else { throw session.fail("region_write DEVICE INDEX OFFSET value=") }
        let width = Int(try session.argument(step, "width", default: 4))
        guard [1, 2, 4].contains(width) else { throw session.fail("width=1, 2 or 4") }
        let value = try session.argument(step, "value")
        let bytes = (0..<width).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
        let offset = Int64(bitPattern: try session.number(step.words[1]) << 40 | (try session.number(step.words[2])))
        let fd = try session.device(step.words[0])
        let written = try bytes.withUnsafeBytes { try session.system.pwrite(fd, from: $0, offset: offset) }
        return Outcome(outputs: ["written": "\(written)"])
    }
}
