import CIOMMUFD
public import IOMMUFD
import Logging
public import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A slice of a device's BAR exported as a dma-buf (`VFIO_DEVICE_FEATURE_DMA_BUF`): the
/// way to let another device DMA into this one's memory (peer to peer) through iommufd.
/// Map it into an IOAS with ``IOMMUFD/IOAS/map(_:offset:length:at:access:fileID:line:)``
/// (`IOMMU_IOAS_MAP_FILE`; mapping the BAR's virtual address with `IOMMU_IOAS_MAP`
/// fails on iommufd). It owns its descriptor, closed when the last reference goes; a
/// mapping holds the dma-buf itself in the kernel, so closing does not unmap.
///
/// The exporter revokes it when the function's memory decoding goes off, across a reset,
/// and for good when the device is closed: its IOAS mappings then stop translating (for
/// good: unmap and map again once memory is back), and new maps are `ENODEV`.
public final class DMABuf: Sendable {
    /// The device whose BAR it exports.
    public let device: VFIODevice
    /// The BAR's region index.
    public let region: Int
    /// Where in the BAR it starts.
    public let offset: UInt64
    /// Its length in bytes.
    public let length: UInt64
    /// The dma-buf's descriptor.
    public var fileDescriptor: FileDescriptor { FileDescriptor(rawValue: descriptor.fd) }
    private let descriptor: OwnedDescriptor

    init(device: VFIODevice, region: Int, offset: UInt64, length: UInt64, fd: Int32) {
        self.device = device
        self.region = region
        self.offset = offset
        self.length = length
        descriptor = OwnedDescriptor(fd, system: device.system)
        device.logger.debug("dma-buf exported", metadata: ["vfio.device": "\(device.path)", "bar": "\(region)", "fd": "\(descriptor.fd)"])
    }

    deinit {
        do throws(IOMMUError) { try close() } catch {
            device.logger.debug("closing a dma-buf failed", metadata: ["vfio.device": "\(device.path)", "error": "\(error)"])
        }
    }

    /// Closes the descriptor now (IOAS mappings of it stay) and reports a failure.
    public func close(fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        do throws(Errno) { try descriptor.close() } catch {
            var context = IOMMUErrorContext(path: device.path)
            context.fileDescriptor = descriptor.fd
            throw IOMMUError(.close, error, context, fileID: fileID, line: line)
        }
    }
}

extension VFIODevice {
    /// Exports `[offset, offset + length)` of BAR `bar` as a dma-buf (page aligned, inside
    /// the BAR). The device must be open through its cdev and bound to an iommufd, or through
    /// its group.
    ///
    /// - Throws: `ENODEV` for a BAR index past 5 or an absent BAR, `EINVAL` for a length of
    ///   0, an unaligned or out-of-BAR range, or an I/O-port BAR; `ENOTTY` on a kernel
    ///   without `CONFIG_VFIO_PCI_DMABUF`. Created while memory decoding is off, it starts
    ///   revoked (mapping it is `ENODEV` until decoding is on).
    public func exportDMABuf(bar: Int, offset: UInt64 = 0, length: UInt64,
                             fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> DMABuf {
        let descriptor = try naming { () throws(IOMMUError) -> Int32 in
            try VFIODeviceIOCTL.exportDMABuf(seam, fd, region: UInt32(bar), ranges: [(offset, length)], openFlags: UInt32(O_RDWR | O_CLOEXEC),
                                             fileID: fileID, line: line)
        }
        return DMABuf(device: self, region: bar, offset: offset, length: length, fd: descriptor)
    }
}

extension IOAS {
    /// Maps `length` bytes (all of it by default) of a dma-buf from `offset`
    /// (`IOMMU_IOAS_MAP_FILE`): devices attached to this IOAS reach the exporting device's
    /// BAR at the returned IOVA. Nothing is pinned or charged: it is device memory.
    ///
    /// - Throws: `ENODEV` while the dma-buf is revoked, `EINVAL` for a range past its end,
    ///   `EOPNOTSUPP` for a dma-buf of several ranges, and the errors of
    ///   `IOAS.mapFile(fileDescriptor:offset:length:at:access:)`.
    public func map(_ buffer: DMABuf, offset: UInt64 = 0, length: UInt64? = nil, at iova: IOVA? = nil, access: MapAccess = .readWrite,
                    fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> IOASMapping {
        try mapFile(fileDescriptor: buffer.fileDescriptor, offset: offset, length: length ?? buffer.length - offset, at: iova, access: access,
                    fileID: fileID, line: line)
    }
}
