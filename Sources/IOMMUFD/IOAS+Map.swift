import CIOMMUFD
import SystemPackage

extension IOAS {
    /// Maps user memory into the IOAS. The corresponding ioctl is `IOMMU_IOAS_MAP`.
    ///
    /// With `iova == nil` the kernel chooses an IOVA inside the allowed ranges,
    /// aligned to keep large pages possible; otherwise the mapping goes exactly at `iova`.
    /// Pages are pinned (and charged to `RLIMIT_MEMLOCK`) once a device domain is attached.
    ///
    /// - Throws: `EEXIST` (fixed IOVA overlaps a mapping), `ENOSPC` (no room), `EINVAL`
    ///   (zero or misaligned length/IOVA, reserved range), `EOVERFLOW` (wrap), `EFAULT`
    ///   (memory not mapped), `ENOMEM` (memlock limit; the error carries the current limit).
    ///
    /// - Safety: `[userAddress, userAddress + length)` must stay mapped in this process, and
    ///   must not be handed to any other use that assumes it is private, until the mapping
    ///   is removed (``unmap(_:fileID:line:)``) and every device that could reach it is
    ///   quiesced: a device may read or write it at any moment in between, and the kernel
    ///   keeps its pages pinned even after a `munmap`. The address is not checked beyond
    ///   what the kernel checks (`EFAULT` for memory that is not mapped now).
    @unsafe
    public func map(
        userAddress: UInt64, length: UInt64, at iova: IOVA? = nil, access: MapAccess = .readWrite,
        fileID: StaticString = #fileID, line: Int = #line
    ) throws(IOMMUError) -> IOASMapping {
        // The handle is checked before the seam is read, so that the seam is passed borrowed
        // (an argument after a `try` makes the compiler copy the existential first).
        let ioas = try liveID(.ioasMap, fileID: fileID, line: line)
        let flags = access.rawValue | (iova == nil ? 0 : IOMMU_IOAS_MAP_FIXED_IOVA)
        let mapped = try IOMMUFDIOCTL.ioasMap(seam, fd, ioas: ioas, flags: flags, userAddress: userAddress, length: length,
                                              iova: iova?.rawValue ?? 0, fileID: fileID, line: line)
        return IOASMapping(iova: IOVA(mapped), length: length)
    }

    /// Maps a buffer of user memory; see ``map(userAddress:length:at:access:fileID:line:)``.
    ///
    /// - Safety: the buffer must stay allocated and mapped until the mapping is removed and
    ///   the devices that could reach it are quiesced; a device may read or write it at any
    ///   time while it is mapped, whatever the buffer's Swift owner believes.
    @unsafe
    public func map(
        _ buffer: UnsafeRawBufferPointer, at iova: IOVA? = nil, access: MapAccess = .readWrite,
        fileID: StaticString = #fileID, line: Int = #line
    ) throws(IOMMUError) -> IOASMapping {
        let address = UInt64(UInt(bitPattern: buffer.baseAddress))
        return try unsafe map(userAddress: address, length: UInt64(buffer.count), at: iova, access: access, fileID: fileID, line: line)
    }

    /// Maps `length` bytes of a file (a memfd, or a dma-buf) from `offset`.
    /// The corresponding ioctl is `IOMMU_IOAS_MAP_FILE`.
    ///
    /// Nothing is pinned by virtual address, which keeps `IOMMU_IOAS_CHANGE_PROCESS` possible.
    ///
    /// - Throws: `EBADF` (not a file), `EINVAL` (beyond the end of the file once pinned), and the errors of `map`.
    public func mapFile(
        fileDescriptor: FileDescriptor, offset: UInt64, length: UInt64, at iova: IOVA? = nil, access: MapAccess = .readWrite,
        fileID: StaticString = #fileID, line: Int = #line
    ) throws(IOMMUError) -> IOASMapping {
        let mapped = try IOMMUFDIOCTL.ioasMapFile(seam, self.fd, ioas: try liveID(.ioasMapFile, fileID: fileID, line: line),
                                                  flags: access.rawValue | (iova == nil ? 0 : IOMMU_IOAS_MAP_FIXED_IOVA),
                                                  fileDescriptor: fileDescriptor.rawValue, start: offset, length: length, iova: iova?.rawValue ?? 0,
                                                  fileID: fileID, line: line)
        return IOASMapping(iova: IOVA(mapped), length: length)
    }

    /// Maps the pages behind `[sourceIOVA, sourceIOVA + length)` of `source` into this IOAS
    /// without pinning them again. The corresponding ioctl is `IOMMU_IOAS_COPY`.
    ///
    /// - Throws: `ENOENT` when the source range is not fully mapped, and the errors of `map`.
    public func copy(
        from source: IOAS, iova sourceIOVA: IOVA, length: UInt64, to iova: IOVA? = nil, access: MapAccess = .readWrite,
        fileID: StaticString = #fileID, line: Int = #line
    ) throws(IOMMUError) -> IOASMapping {
        let destination = try liveID(.ioasCopy, fileID: fileID, line: line)
        let sourceID = try source.liveID(.ioasCopy, fileID: fileID, line: line)
        let mapped = try IOMMUFDIOCTL.ioasCopy(seam, fd, destination: destination, source: sourceID,
                                               flags: access.rawValue | (iova == nil ? 0 : IOMMU_IOAS_MAP_FIXED_IOVA), length: length,
                                               destinationIOVA: iova?.rawValue ?? 0, sourceIOVA: sourceIOVA.rawValue,
                                               fileID: fileID, line: line)
        return IOASMapping(iova: IOVA(mapped), length: length)
    }

    /// Unmaps every mapping inside `[iova, iova + length)` and returns the bytes unmapped.
    /// The corresponding ioctl is `IOMMU_IOAS_UNMAP`.
    ///
    /// The range may contain holes but must not cut through a mapping.
    ///
    /// - Throws: `ENOENT` when nothing is mapped there or a mapping is cut, `EINVAL` for
    ///   length 0, `EOVERFLOW` when the range wraps.
    @inline(__always)
    public func unmap(iova: IOVA, length: UInt64, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> UInt64 {
        let ioas = try liveID(.ioasUnmap, fileID: fileID, line: line)  // first: see map(userAddress:)
        return try IOMMUFDIOCTL.ioasUnmap(seam, fd, ioas: ioas, iova: iova.rawValue, length: length, fileID: fileID, line: line)
    }

    /// Unmaps exactly one mapping and checks that the kernel removed exactly its length.
    ///
    /// - Throws: the errors of ``unmap(iova:length:fileID:line:)``, or `EIO` with
    ///   `context.reportedLength` set when the kernel reports a different length.
    public func unmap(_ mapping: IOASMapping, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        let unmapped = try unmap(iova: mapping.iova, length: mapping.length, fileID: fileID, line: line)
        if unmapped != mapping.length {
            var context = IOMMUErrorContext(objectID: id.rawValue, iova: mapping.iova.rawValue, length: mapping.length)
            context.reportedLength = unmapped
            throw IOMMUError(.ioasUnmap, .ioError, context, fileID: fileID, line: line)
        }
    }

    /// Unmaps everything in the IOAS (`iova = 0, length = UINT64_MAX`) and returns the bytes unmapped; succeeds on an empty IOAS.
    public func unmapAll(fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> UInt64 {
        try unmap(iova: IOVA(0), length: .max, fileID: fileID, line: line)
    }
}
