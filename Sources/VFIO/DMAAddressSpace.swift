public import Logging
public import IOMMUFD

/// Where a device's DMA addresses are translated: an iommufd IOAS, or a legacy type1
/// container. One API over both, so a driver does not care which path the kernel
/// offered (libvfn's `iommu_ctx`).
///
/// An enum rather than a protocol: the two cases are all there are, and a `switch`
/// costs nothing on the map/unmap path where an existential would box.
public enum DMAAddressSpace: Sendable {
    /// An iommufd I/O address space; mappings use `IOMMU_IOAS_MAP` and `IOMMU_IOAS_UNMAP`.
    case iommufd(IOAS)
    /// A legacy VFIO container with the type1 IOMMU; mappings use `VFIO_IOMMU_MAP_DMA` and `VFIO_IOMMU_UNMAP_DMA`.
    case type1(VFIOContainer)

    /// The system the space talks to: memory for it must come from the same one (a mock
    /// IOAS needs mock memory), so managers and pools take it from here, never from a default.
    public var system: any SystemInterface {
        switch self {
        case .iommufd(let ioas): ioas.iommufd.system
        case .type1(let container): container.system
        }
    }

    /// Where the space's objects log: its iommufd's or container's logger.
    public var logger: Logger {
        switch self {
        case .iommufd(let ioas): ioas.iommufd.logger
        case .type1(let container): container.logger
        }
    }

    /// Which VFIO path the space belongs to.
    public var path: VFIODevice.Path {
        switch self {
        case .iommufd: .iommufdCdev
        case .type1: .legacyGroup
        }
    }

    /// Maps user memory at a fixed IOVA for the devices of this space.
    ///
    /// - Safety: `[userAddress, userAddress + length)` must stay mapped in this process, and
    ///   must not be handed to any other use that assumes it is private, until the mapping is
    ///   removed and every device that could reach it is quiesced: a device may read or write
    ///   it at any moment in between, and the kernel keeps its pages pinned even after a
    ///   `munmap`.
    @unsafe
    public func map(
        userAddress: UInt64, length: UInt64, at iova: IOVA, access: MapAccess = .readWrite,
        fileID: StaticString = #fileID, line: Int = #line
    ) throws(IOMMUError) -> DMAMapping {
        switch self {
        case .iommufd(let ioas):
            unsafe try ioas.map(userAddress: userAddress, length: length, at: iova, access: access, fileID: fileID, line: line)
        case .type1(let container):
            unsafe try container.map(userAddress: userAddress, length: length, at: iova, access: access, fileID: fileID, line: line)
        }
    }

    /// Maps a buffer; see ``map(userAddress:length:at:access:fileID:line:)``.
    ///
    /// - Safety: the buffer must stay allocated and mapped until the mapping is removed and
    ///   the devices that could reach it are quiesced; a device may read or write it at any
    ///   time while it is mapped, whatever the buffer's Swift owner believes.
    @unsafe
    public func map(
        _ buffer: UnsafeRawBufferPointer, at iova: IOVA, access: MapAccess = .readWrite,
        fileID: StaticString = #fileID, line: Int = #line
    ) throws(IOMMUError) -> DMAMapping {
        try unsafe map(userAddress: UInt64(UInt(bitPattern: buffer.baseAddress)), length: UInt64(buffer.count), at: iova,
                access: access, fileID: fileID, line: line)
    }

    /// Removes one mapping, exactly as it was made.
    public func unmap(_ mapping: DMAMapping, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        switch self {
        case .iommufd(let ioas): try ioas.unmap(mapping, fileID: fileID, line: line)
        case .type1(let container): try container.unmap(mapping, fileID: fileID, line: line)
        }
    }

    /// The IOVA ranges a mapping may use, and the alignment it needs.
    public func iovaRanges(fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> IOVARanges {
        switch self {
        case .iommufd(let ioas):
            return try ioas.iovaRanges(fileID: fileID, line: line)
        case .type1(let container):
            let info = try container.info(fileID: fileID, line: line)
            return IOVARanges(ranges: info.iovaRanges, alignment: info.minimumPageSize)
        }
    }
}
