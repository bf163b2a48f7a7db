import CIOMMUFD
import IOMMUFD
import SystemPackage

/// The VFIO container family of the ioctl catalogue (`/dev/vfio/vfio`, the legacy type1
/// path): one function per ioctl.
package enum VFIOContainerIOCTL {
    /// `VFIO_GET_API_VERSION`.
    package static func getAPIVersion(_ seam: IOCTLSeam, _ fd: Int32, fileID: StaticString, line: Int) throws(IOMMUError) -> Int32 {
        try issueIOCTL(seam, fd, VFIO_GET_API_VERSION, .vfioGetAPIVersion, argument: nil, IOMMUErrorContext(), fileID: fileID, line: line)
    }

    /// `VFIO_CHECK_EXTENSION`: a positive answer means the extension (or IOMMU type) is offered.
    package static func checkExtension(_ seam: IOCTLSeam, _ fd: Int32, _ extensionID: UInt, fileID: StaticString, line: Int) throws(IOMMUError) -> Int32 {
        unsafe try issueIOCTL(seam, fd, VFIO_CHECK_EXTENSION, .vfioCheckExtension, argument: UnsafeMutableRawPointer(bitPattern: extensionID),
                       IOMMUErrorContext(objectID: UInt32(truncatingIfNeeded: extensionID)), fileID: fileID, line: line)
    }

    /// `VFIO_SET_IOMMU`: chooses the IOMMU backend (`VFIO_TYPE1v2_IOMMU`) once a group joined.
    package static func setIOMMU(_ seam: IOCTLSeam, _ fd: Int32, _ type: UInt, fileID: StaticString, line: Int) throws(IOMMUError) {
        _ = unsafe try issueIOCTL(seam, fd, VFIO_SET_IOMMU, .vfioSetIOMMU, argument: UnsafeMutableRawPointer(bitPattern: type),
                           IOMMUErrorContext(objectID: UInt32(truncatingIfNeeded: type)), fileID: fileID, line: line)
    }

    /// `VFIO_IOMMU_GET_INFO` into `buffer` (the header, then room for the capability chain);
    /// returns the header, whose `argsz` says how much room the whole answer needs.
    package static func getInfo(_ seam: IOCTLSeam, _ fd: Int32, into buffer: UnsafeMutableRawBufferPointer,
                                fileID: StaticString, line: Int) throws(IOMMUError) -> vfio_iommu_type1_info {
        var header = vfio_iommu_type1_info()
        header.argsz = UInt32(buffer.count)
        unsafe buffer.storeBytes(of: header, as: vfio_iommu_type1_info.self)
        _ = unsafe try issueIOCTL(seam, fd, VFIO_IOMMU_GET_INFO, .vfioIOMMUGetInfo, argument: buffer.baseAddress,
                           IOMMUErrorContext(length: UInt64(buffer.count), fileDescriptor: fd), fileID: fileID, line: line)
        return unsafe buffer.load(as: vfio_iommu_type1_info.self)
    }

    /// `VFIO_IOMMU_MAP_DMA`: maps `[userAddress, userAddress + size)` at `iova`.
    package static func mapDMA(_ seam: IOCTLSeam, _ fd: Int32, flags: UInt32, userAddress: UInt64, iova: UInt64, size: UInt64,
                               fileID: StaticString, line: Int) throws(IOMMUError) {
        var command = vfio_iommu_type1_dma_map()
        command.argsz = UInt32(MemoryLayout<vfio_iommu_type1_dma_map>.size)
        command.flags = flags
        command.vaddr = userAddress
        command.iova = iova
        command.size = size
        try issueIOCTL(seam, fd, VFIO_IOMMU_MAP_DMA, .vfioIOMMUMapDMA, &command,
                       IOMMUErrorContext(iova: iova, length: size, userAddress: userAddress, fileDescriptor: fd), fileID: fileID, line: line)
    }

    /// `VFIO_IOMMU_UNMAP_DMA`: unmaps `[iova, iova + size)` (everything with
    /// `VFIO_DMA_UNMAP_FLAG_ALL`); returns the bytes unmapped.
    package static func unmapDMA(_ seam: IOCTLSeam, _ fd: Int32, flags: UInt32, iova: UInt64, size: UInt64,
                                 fileID: StaticString, line: Int) throws(IOMMUError) -> UInt64 {
        var command = vfio_iommu_type1_dma_unmap()
        command.argsz = UInt32(MemoryLayout<vfio_iommu_type1_dma_unmap>.size)
        command.flags = flags
        command.iova = iova
        command.size = size
        try issueIOCTL(seam, fd, VFIO_IOMMU_UNMAP_DMA, .vfioIOMMUUnmapDMA, &command,
                       IOMMUErrorContext(iova: iova, length: size, fileDescriptor: fd), fileID: fileID, line: line)
        return command.size
    }
}
