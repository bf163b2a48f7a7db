import CIOMMUFD

/// A physically contiguous piece of memory behind IOVAs, in the no-IOMMU mode.
public struct PhysicalRange: Sendable, Hashable {
    /// The first byte's physical address.
    public var address: UInt64
    /// How many bytes from it are physically contiguous.
    public var length: UInt64

    /// A range of `length` bytes from physical `address`.
    public init(address: UInt64, length: UInt64) {
        self.address = address
        self.length = length
    }
}

extension IOAS {
    /// The physical memory behind `[iova, iova + length)` in the unsafe no-IOMMU mode
    /// (`IOMMU_IOAS_NOIOMMU_GET_PA`, asked piece by piece): a device there has no IOMMU and
    /// DMAs to physical addresses, so a driver programs it with these instead of IOVAs.
    /// The IOAS needs the no-IOMMU device attached (its software table holds the pins), and
    /// the mapping must stay until the device's DMA has stopped.
    ///
    /// - Throws: `EPERM` without `CAP_SYS_RAWIO`, `EOPNOTSUPP` on a kernel without
    ///   `CONFIG_IOMMUFD_NOIOMMU` or when the IOAS has no domain, or another IOMMU's domain,
    ///   `ENOENT` for an IOVA nothing maps, `EINVAL` for a revoked dma-buf area.
    public func physicalRanges(of iova: IOVA, length: UInt64, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> [PhysicalRange] {
        let ioas = try liveID(.ioasNoIOMMUGetPA, fileID: fileID, line: line)
        var ranges: [PhysicalRange] = []
        var cursor = iova.rawValue
        var left = length
        while left > 0 {
            let piece = try IOMMUFDIOCTL.noIOMMUGetPA(seam, fd, ioas: ioas, iova: cursor, length: left, fileID: fileID, line: line)
            guard piece.length > 0 else { break }
            ranges.append(PhysicalRange(address: piece.address, length: piece.length))
            cursor += piece.length
            left -= min(left, piece.length)
        }
        return ranges
    }
}
