import CIOMMUFD
import IOMMUFDSystem
import SystemPackage

/// A dma-buf that vfio-pci exported from BAR slices (`struct vfio_pci_dma_buf`,
/// drivers/vfio/pci/vfio_pci_dmabuf.c).
struct MockDMABuf {
    var deviceIndex: Int
    var region: Int
    var ranges: [(offset: UInt64, length: UInt64)]
    /// Revoked while the function's memory decoding is off, across a reset, and for good
    /// once the device is closed (vfio_pci_dma_buf_move, vfio_pci_dma_buf_cleanup).
    var revoked: Bool
    var detached = false
    /// Its descriptors plus the iommufd pages objects that hold it.
    var references = 1

    var size: UInt64 { ranges.reduce(0) { $0 + $1.length } }
}

// P2P through dma-buf: VFIO_DEVICE_FEATURE_DMA_BUF (vfio_pci_dmabuf.c:221-334), its import
// by IOMMU_IOAS_MAP_FILE (io_pagetable.c:482-527, pages.c:1458-1574) and revocation.
extension KernelState {
    /// `VFIO_DEVICE_FEATURE` (vfio_main.c:1263-1321) for `VFIO_DEVICE_FEATURE_DMA_BUF`;
    /// other features are not modelled (refused loudly). Returns the new descriptor.
    mutating func deviceFeature(_ file: DeviceFile, _ argument: UnsafeMutableRawPointer) throws(Errno) -> Int32 {
        let header = unsafe argument.loadUnaligned(as: vfio_device_feature.self)
        guard header.argsz >= 8 else { throw .invalidArgument }
        let known = VFIO_DEVICE_FEATURE_MASK | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PROBE
        guard header.flags & ~known == 0 else { throw .invalidArgument }
        let get = header.flags & VFIO_DEVICE_FEATURE_GET != 0, set = header.flags & VFIO_DEVICE_FEATURE_SET != 0
        let probe = header.flags & VFIO_DEVICE_FEATURE_PROBE != 0
        if get && set && !probe { throw .invalidArgument }
        guard header.flags & VFIO_DEVICE_FEATURE_MASK == VFIO_DEVICE_FEATURE_DMA_BUF else {
            unmodelledCalls.append(.vfioDeviceFeature)
            throw .noFunction
        }
        // vfio_check_feature(flags, argsz - 8, GET, 16) (include/linux/vfio.h:272-286).
        if set { throw .invalidArgument }
        if probe { return 0 }
        guard get, header.argsz - 8 >= UInt32(MemoryLayout<vfio_device_feature_dma_buf>.size) else { throw .invalidArgument }
        let request = unsafe (argument + 8).loadUnaligned(as: vfio_device_feature_dma_buf.self)
        guard request.nr_ranges != 0, request.flags == 0 else { throw .invalidArgument }
        let device = configuration.pciDevices[file.deviceIndex]
        let region = Int(request.region_index)
        let barSize = region < device.barSizes.count ? device.barSizes[region] : 0
        guard request.region_index < VFIO_PCI_ROM_REGION_INDEX, barSize != 0 else { throw .operationNotSupportedByDevice }
        var ranges: [(offset: UInt64, length: UInt64)] = []
        var total: UInt64 = 0
        for index in 0..<Int(request.nr_ranges) {
            let range = unsafe (argument + 8 + 16 + 16 * index).loadUnaligned(as: vfio_region_dma_range.self)
            // validate_dmabuf_input (vfio_pci_dmabuf.c:192-219).
            guard range.length != 0, range.offset % pageSize == 0, range.length % pageSize == 0 else { throw .invalidArgument }
            let (sum, overflow) = total.addingReportingOverflow(range.length)
            guard !overflow, sum >> 63 == 0 else { throw .invalidArgument }
            total = sum
            ranges.append((range.offset, range.length))
        }
        // An I/O-port BAR has no P2P provider (vfio_pci_dmabuf.c:181-183); then
        // vfio_pci_core_fill_phys_vec (vfio_pci_dmabuf.c:143-169): inside the BAR.
        if device.ioBARs.contains(region) { throw .invalidArgument }
        for range in ranges {
            let (end, overflow) = range.offset.addingReportingOverflow(range.length)
            guard !overflow else { throw .overflow }
            guard end <= barSize else { throw .invalidArgument }
        }
        // Made revoked when memory decoding is off (vfio_pci_dmabuf.c:308-313).
        let id = nextDMABufID
        nextDMABufID += 1
        dmaBufs[id] = MockDMABuf(deviceIndex: file.deviceIndex, region: region, ranges: ranges,
                                 revoked: !memoryDecodingEnabled(file.deviceIndex))
        let fd = lowestFreeDescriptor()
        descriptors[fd] = .dmaBuf(id: id)
        if request.open_flags & UInt32(O_CLOEXEC) == 0 { descriptorsWithoutCloexec += 1 }
        return fd
    }

    /// The function's command register has memory decoding on (`__vfio_pci_memory_enabled`).
    func memoryDecodingEnabled(_ deviceIndex: Int) -> Bool {
        guard let runtime = vfio.devices[deviceIndex] else { return false }
        return runtime.configuration[0x04] & 0x02 != 0
    }

    /// `vfio_pci_dma_buf_move` (vfio_pci_dmabuf.c:336-378): a function's dma-bufs follow its
    /// memory decoding; a revoke reaches every iommufd mapping of them, which stays dead
    /// (iopt_revoke_notify, pages.c:1439-1456: nothing brings it back). `forever` is the
    /// device's last close (vfio_pci_dma_buf_cleanup).
    mutating func moveDMABufs(ofDevice deviceIndex: Int, revoked: Bool, forever: Bool = false) {
        for (id, var buffer) in dmaBufs where buffer.deviceIndex == deviceIndex && !buffer.detached {
            buffer.revoked = revoked
            buffer.detached = forever
            dmaBufs[id] = buffer
            guard revoked else { continue }
            for contextID in contexts.keys {
                for (pagesID, pages) in contexts[contextID]!.pages {
                    if case .dmaBuf(id, _) = pages.source { contexts[contextID]!.pages[pagesID]!.revoked = true }
                }
            }
        }
    }

    /// `iopt_alloc_dmabuf_pages` and `iopt_map_dmabuf` for `IOMMU_IOAS_MAP_FILE` of a
    /// dma-buf: the range inside it (`EINVAL`), not revoked (`ENODEV`), one range
    /// (`EOPNOTSUPP`). Its pages are never pinned nor charged.
    mutating func dmaBufSource(_ id: Int, start: UInt64, length: UInt64) throws(Errno) -> PagesObject.Source {
        guard let buffer = dmaBufs[id] else { throw .badFileDescriptor }
        guard start + length - 1 < buffer.size else { throw .invalidArgument }
        guard !buffer.revoked else { throw .operationNotSupportedByDevice }
        guard buffer.ranges.count == 1 else { throw .notSupported }
        dmaBufs[id]!.references += 1
        return .dmaBuf(id: id, start: start - start % pageSize)
    }

    /// One reference to a dma-buf fewer (a descriptor closed, a pages object gone).
    mutating func releaseDMABuf(_ id: Int) {
        dmaBufs[id]?.references -= 1
        if dmaBufs[id]?.references == 0 { dmaBufs[id] = nil }
    }

    /// Where a dma-buf's byte `offset` lives in the model's BAR storage, unless it is revoked.
    func dmaBufAddress(_ id: Int, offset: UInt64) -> UInt? {
        guard let buffer = dmaBufs[id], !buffer.revoked, let range = buffer.ranges.first,
              let base = vfio.devices[buffer.deviceIndex]?.barStorage[buffer.region], base != 0 else { return nil }
        return base + UInt(range.offset + offset)
    }
}
