import CIOMMUFD
import IOMMUFD
import SystemPackage

/// The VFIO device family of the ioctl catalogue: exactly one function per ioctl on a device
/// descriptor (a cdev, or a group's device descriptor). Each fills its struct (with `argsz`),
/// issues it through the seam, and returns the out-fields or an `IOMMUError` carrying the
/// arguments it was given. Nothing else in the toolkit issues a VFIO device ioctl.
package enum VFIODeviceIOCTL {
    /// `VFIO_DEVICE_BIND_IOMMUFD`: binds the cdev to `iommufd`; returns the iommufd device id.
    /// `token` is the address of a 16-byte VF token, or 0 for none.
    package static func bind(_ seam: IOCTLSeam, _ fd: Int32, iommufd: Int32, token: UInt64,
                             fileID: StaticString, line: Int) throws(IOMMUError) -> UInt32 {
        var command = vfio_device_bind_iommufd()
        command.argsz = UInt32(MemoryLayout<vfio_device_bind_iommufd>.size)
        command.iommufd = iommufd
        if token != 0 {
            command.flags = VFIO_DEVICE_BIND_FLAG_TOKEN
            command.token_uuid_ptr = token
        }
        try issueIOCTL(seam, fd, VFIO_DEVICE_BIND_IOMMUFD, .vfioDeviceBindIOMMUFD, &command,
                       IOMMUErrorContext(fileDescriptor: iommufd), fileID: fileID, line: line)
        return command.out_devid
    }

    /// `VFIO_DEVICE_ATTACH_IOMMUFD_PT`: attaches (or replaces) the device's RID, or one PASID
    /// when `pasid` is given, to an IOAS or HWPT; returns the HWPT it is attached to.
    package static func attach(_ seam: IOCTLSeam, _ fd: Int32, pageTable: UInt32, pasid: UInt32? = nil,
                               fileID: StaticString, line: Int) throws(IOMMUError) -> UInt32 {
        var command = vfio_device_attach_iommufd_pt()
        command.argsz = UInt32(MemoryLayout<vfio_device_attach_iommufd_pt>.size)
        command.pt_id = pageTable
        if let pasid {
            command.flags = VFIO_DEVICE_ATTACH_PASID
            command.pasid = pasid
        }
        try issueIOCTL(seam, fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, .vfioDeviceAttachIOMMUFDPT, &command,
                       IOMMUErrorContext(objectID: pageTable), fileID: fileID, line: line)
        return command.pt_id
    }

    /// `VFIO_DEVICE_DETACH_IOMMUFD_PT`: detaches the RID, or one PASID.
    package static func detach(_ seam: IOCTLSeam, _ fd: Int32, pasid: UInt32? = nil,
                               fileID: StaticString, line: Int) throws(IOMMUError) {
        var command = vfio_device_detach_iommufd_pt()
        command.argsz = UInt32(MemoryLayout<vfio_device_detach_iommufd_pt>.size)
        if let pasid {
            command.flags = VFIO_DEVICE_DETACH_PASID
            command.pasid = pasid
        }
        try issueIOCTL(seam, fd, VFIO_DEVICE_DETACH_IOMMUFD_PT, .vfioDeviceDetachIOMMUFDPT, &command,
                       IOMMUErrorContext(), fileID: fileID, line: line)
    }

    /// `VFIO_DEVICE_GET_INFO`.
    package static func getInfo(_ seam: IOCTLSeam, _ fd: Int32, fileID: StaticString, line: Int) throws(IOMMUError) -> vfio_device_info {
        var command = vfio_device_info()
        command.argsz = UInt32(MemoryLayout<vfio_device_info>.size)
        try issueIOCTL(seam, fd, VFIO_DEVICE_GET_INFO, .vfioDeviceGetInfo, &command, IOMMUErrorContext(), fileID: fileID, line: line)
        return command
    }

    /// `VFIO_DEVICE_GET_REGION_INFO` into `buffer` (at least `sizeof(vfio_region_info)`, room
    /// after it for the capability chain); returns the header as the kernel left it, whose
    /// `argsz` says how much room the whole answer needs.
    package static func getRegionInfo(_ seam: IOCTLSeam, _ fd: Int32, index: UInt32, into buffer: UnsafeMutableRawBufferPointer,
                                      fileID: StaticString, line: Int) throws(IOMMUError) -> vfio_region_info {
        var header = vfio_region_info()
        header.argsz = UInt32(buffer.count)
        header.index = index
        unsafe buffer.storeBytes(of: header, as: vfio_region_info.self)
        var context = IOMMUErrorContext(length: UInt64(buffer.count))
        context.regionIndex = index
        _ = unsafe try issueIOCTL(seam, fd, VFIO_DEVICE_GET_REGION_INFO, .vfioDeviceGetRegionInfo, argument: buffer.baseAddress,
                           context, fileID: fileID, line: line)
        return unsafe buffer.load(as: vfio_region_info.self)
    }

    /// `VFIO_DEVICE_GET_IRQ_INFO` for one interrupt index.
    package static func getIRQInfo(_ seam: IOCTLSeam, _ fd: Int32, index: UInt32, fileID: StaticString, line: Int) throws(IOMMUError) -> vfio_irq_info {
        var command = vfio_irq_info()
        command.argsz = UInt32(MemoryLayout<vfio_irq_info>.size)
        command.index = index
        try issueIOCTL(seam, fd, VFIO_DEVICE_GET_IRQ_INFO, .vfioDeviceGetIRQInfo, &command,
                       IOMMUErrorContext(objectID: index), fileID: fileID, line: line)
        return command
    }

    /// `VFIO_DEVICE_SET_IRQS`: `flags` (data type | action) for vectors `[start, start + count)`
    /// of `index`, followed by `data` (eventfds as `Int32`s, or bools as bytes; empty for `DATA_NONE`).
    package static func setIRQs(_ seam: IOCTLSeam, _ fd: Int32, index: UInt32, flags: UInt32, start: UInt32, count: UInt32,
                                data: UnsafeRawBufferPointer, fileID: StaticString, line: Int) throws(IOMMUError) {
        let headerSize = MemoryLayout<vfio_irq_set>.size
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: headerSize + data.count, alignment: 8)
        defer { unsafe buffer.deallocate() }
        var header = vfio_irq_set()
        header.argsz = UInt32(buffer.count)
        header.flags = flags
        header.index = index
        header.start = start
        header.count = count
        unsafe buffer.storeBytes(of: header, as: vfio_irq_set.self)
        if unsafe !data.isEmpty { unsafe UnsafeMutableRawBufferPointer(rebasing: buffer[headerSize...]).copyMemory(from: data) }
        _ = unsafe try issueIOCTL(seam, fd, VFIO_DEVICE_SET_IRQS, .vfioDeviceSetIRQs, argument: buffer.baseAddress,
                           IOMMUErrorContext(objectID: index, length: UInt64(count)), fileID: fileID, line: line)
    }

    /// `VFIO_DEVICE_RESET`.
    package static func reset(_ seam: IOCTLSeam, _ fd: Int32, fileID: StaticString, line: Int) throws(IOMMUError) {
        _ = try issueIOCTL(seam, fd, VFIO_DEVICE_RESET, .vfioDeviceReset, argument: nil, IOMMUErrorContext(), fileID: fileID, line: line)
    }

    /// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO` into `buffer` (the header, then room for the
    /// dependent devices); returns the header. When they do not fit the kernel answers
    /// `ENOSPC` and the error's `context.reportedCount` says how many there are.
    package static func getPCIHotResetInfo(_ seam: IOCTLSeam, _ fd: Int32, into buffer: UnsafeMutableRawBufferPointer,
                                           fileID: StaticString, line: Int) throws(IOMMUError) -> vfio_pci_hot_reset_info {
        var header = vfio_pci_hot_reset_info()
        header.argsz = UInt32(buffer.count)
        unsafe buffer.storeBytes(of: header, as: vfio_pci_hot_reset_info.self)
        do {
            _ = unsafe try issueIOCTL(seam, fd, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, .vfioDeviceGetPCIHotResetInfo, argument: buffer.baseAddress,
                               IOMMUErrorContext(length: UInt64(buffer.count)), fileID: fileID, line: line)
        } catch {
            var error = error
            error.context.reportedCount = unsafe buffer.load(as: vfio_pci_hot_reset_info.self).count
            throw error
        }
        return unsafe buffer.load(as: vfio_pci_hot_reset_info.self)
    }

    /// `VFIO_DEVICE_FEATURE` with `VFIO_DEVICE_FEATURE_DMA_BUF`: exports `ranges` of region
    /// `region` (a BAR) as one dma-buf; returns its descriptor, opened with `openFlags`, which
    /// the caller owns (0 for a `PROBE`). `featureFlags` are the GET/SET/PROBE bits, and
    /// `argumentSize` overrides `argsz` (the scenarios' ABI checks).
    package static func exportDMABuf(_ seam: IOCTLSeam, _ fd: Int32, region: UInt32, ranges: [(offset: UInt64, length: UInt64)],
                                     openFlags: UInt32, flags: UInt32 = 0, featureFlags: UInt32 = VFIO_DEVICE_FEATURE_GET,
                                     argumentSize: UInt32? = nil, fileID: StaticString, line: Int) throws(IOMMUError) -> Int32 {
        let headerSize = MemoryLayout<vfio_device_feature>.size + MemoryLayout<vfio_device_feature_dma_buf>.size
        let size = headerSize + MemoryLayout<vfio_region_dma_range>.size * ranges.count
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 8)
        defer { unsafe buffer.deallocate() }
        unsafe buffer.initializeMemory(as: UInt8.self, repeating: 0)
        unsafe buffer.storeBytes(of: argumentSize ?? UInt32(size), as: UInt32.self)  // argsz
        unsafe buffer.storeBytes(of: featureFlags | VFIO_DEVICE_FEATURE_DMA_BUF, toByteOffset: 4, as: UInt32.self)  // flags
        var request = vfio_device_feature_dma_buf()
        request.region_index = region
        request.open_flags = openFlags
        request.flags = flags
        request.nr_ranges = UInt32(ranges.count)
        unsafe buffer.storeBytes(of: request, toByteOffset: MemoryLayout<vfio_device_feature>.size, as: vfio_device_feature_dma_buf.self)
        for (index, range) in ranges.enumerated() {
            unsafe buffer.storeBytes(of: vfio_region_dma_range(offset: range.offset, length: range.length),
                                     toByteOffset: headerSize + index * MemoryLayout<vfio_region_dma_range>.size, as: vfio_region_dma_range.self)
        }
        var context = IOMMUErrorContext(objectID: region)
        context.iova = ranges.first?.offset
        context.length = ranges.first?.length
        return unsafe try issueIOCTL(seam, fd, VFIO_DEVICE_FEATURE, .vfioDeviceFeature, argument: buffer.baseAddress, context, fileID: fileID, line: line)
    }
}
