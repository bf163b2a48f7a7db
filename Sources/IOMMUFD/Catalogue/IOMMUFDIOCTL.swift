import CIOMMUFD
import SystemPackage

/// The iommufd family of the ioctl catalogue: exactly one function per `/dev/iommu` command.
/// Each fills its struct (with `size`), issues it through the seam and returns the out-fields,
/// or throws an ``IOMMUError`` whose context holds the arguments it was given. Ids are raw
/// kernel ids: the typed layer wraps them, and the scenario runner passes any number on purpose.
/// Nothing else in the toolkit issues an iommufd ioctl.
package enum IOMMUFDIOCTL {
    /// `IOMMU_DESTROY`: destroys any object by id.
    @inlinable
    package static func destroy(_ seam: IOCTLSeam, _ fd: Int32, id: UInt32,
                                fileID: StaticString, line: Int) throws(IOMMUError) {
        var command = iommu_destroy(size: UInt32(MemoryLayout<iommu_destroy>.size), id: id)
        try issueIOCTL(seam, fd, IOMMU_DESTROY, .destroy, &command, IOMMUErrorContext(objectID: id), fileID: fileID, line: line)
    }

    /// `IOMMU_IOAS_ALLOC`: a new, empty IOAS; returns its id.
    @inlinable
    package static func ioasAlloc(_ seam: IOCTLSeam, _ fd: Int32, fileID: StaticString, line: Int) throws(IOMMUError) -> UInt32 {
        var command = iommu_ioas_alloc()
        command.size = UInt32(MemoryLayout<iommu_ioas_alloc>.size)
        try issueIOCTL(seam, fd, IOMMU_IOAS_ALLOC, .ioasAlloc, &command, IOMMUErrorContext(), fileID: fileID, line: line)
        return command.out_ioas_id
    }

    /// `IOMMU_HWPT_ALLOC`: a HWPT for `device` on `pageTable` (an IOAS: a paging HWPT; a
    /// nesting-parent HWPT or a vIOMMU: a nested one, with vendor `data`). Returns its id.
    @unsafe
    package static func hwptAlloc(_ seam: IOCTLSeam, _ fd: Int32, device: UInt32, pageTable: UInt32, flags: UInt32,
                                  dataType: UInt32, data: UnsafeRawBufferPointer?, faultID: UInt32,
                                  fileID: StaticString, line: Int) throws(IOMMUError) -> UInt32 {
        var command = iommu_hwpt_alloc()
        command.size = UInt32(MemoryLayout<iommu_hwpt_alloc>.size)
        command.flags = flags
        command.dev_id = device
        command.pt_id = pageTable
        command.data_type = dataType
        command.data_len = unsafe UInt32(data?.count ?? 0)
        command.data_uptr = unsafe UInt64(UInt(bitPattern: data?.baseAddress))
        command.fault_id = faultID
        var context = IOMMUErrorContext(objectID: pageTable)
        context.otherObjectID = device
        try issueIOCTL(seam, fd, IOMMU_HWPT_ALLOC, .hwptAlloc, &command, context, fileID: fileID, line: line)
        return command.out_hwpt_id
    }

    /// `IOMMU_HWPT_SET_DIRTY_TRACKING`: turns dirty tracking of a paging HWPT on (flags
    /// `IOMMU_HWPT_DIRTY_TRACKING_ENABLE`; clearing what was dirty) or off (0).
    package static func hwptSetDirtyTracking(_ seam: IOCTLSeam, _ fd: Int32, hwpt: UInt32, flags: UInt32,
                                             fileID: StaticString, line: Int) throws(IOMMUError) {
        var command = iommu_hwpt_set_dirty_tracking()
        command.size = UInt32(MemoryLayout<iommu_hwpt_set_dirty_tracking>.size)
        command.flags = flags
        command.hwpt_id = hwpt
        try issueIOCTL(seam, fd, IOMMU_HWPT_SET_DIRTY_TRACKING, .hwptSetDirtyTracking, &command,
                       IOMMUErrorContext(objectID: hwpt), fileID: fileID, line: line)
    }

    /// `IOMMU_VIOMMU_ALLOC`: a vIOMMU of `type` for `device`'s IOMMU on the nesting parent
    /// `hwpt`, with the driver's data in `data` (in and out: the driver writes its answer
    /// back into it); returns the vIOMMU's id.
    @unsafe
    package static func viommuAlloc(_ seam: IOCTLSeam, _ fd: Int32, device: UInt32, hwpt: UInt32, type: UInt32, flags: UInt32,
                                    data: UnsafeMutableRawBufferPointer?, fileID: StaticString, line: Int) throws(IOMMUError) -> UInt32 {
        var command = iommu_viommu_alloc()
        command.size = UInt32(MemoryLayout<iommu_viommu_alloc>.size)
        command.flags = flags
        command.type = type
        command.dev_id = device
        command.hwpt_id = hwpt
        command.data_len = unsafe UInt32(data?.count ?? 0)
        command.data_uptr = unsafe UInt64(UInt(bitPattern: data?.baseAddress))
        var context = IOMMUErrorContext(objectID: hwpt)
        context.otherObjectID = device
        try issueIOCTL(seam, fd, IOMMU_VIOMMU_ALLOC, .viommuAlloc, &command, context, fileID: fileID, line: line)
        return command.out_viommu_id
    }

    /// `IOMMU_VDEVICE_ALLOC`: `device`'s virtual id `virtualID` on the vIOMMU `viommu`;
    /// returns the vDEVICE's id.
    package static func vdeviceAlloc(_ seam: IOCTLSeam, _ fd: Int32, viommu: UInt32, device: UInt32, virtualID: UInt64,
                                     fileID: StaticString, line: Int) throws(IOMMUError) -> UInt32 {
        var command = iommu_vdevice_alloc()
        command.size = UInt32(MemoryLayout<iommu_vdevice_alloc>.size)
        command.viommu_id = viommu
        command.dev_id = device
        command.virt_id = virtualID
        try issueIOCTL(seam, fd, IOMMU_VDEVICE_ALLOC, .vdeviceAlloc, &command, IOMMUErrorContext(objectID: viommu, otherObjectID: device),
                       fileID: fileID, line: line)
        return command.out_vdevice_id
    }

    /// `IOMMU_VEVENTQ_ALLOC`: a queue of `depth` events of `type` from the vIOMMU `viommu`;
    /// returns its id and its descriptor (close-on-exec), which the caller owns.
    package static func veventqAlloc(_ seam: IOCTLSeam, _ fd: Int32, viommu: UInt32, type: UInt32, depth: UInt32, flags: UInt32 = 0,
                                     reserved: UInt32 = 0, fileID: StaticString, line: Int) throws(IOMMUError) -> (id: UInt32, fd: Int32) {
        var command = iommu_veventq_alloc()
        command.size = UInt32(MemoryLayout<iommu_veventq_alloc>.size)
        command.flags = flags
        command.viommu_id = viommu
        command.type = type
        command.veventq_depth = depth
        command.__reserved = reserved
        try issueIOCTL(seam, fd, IOMMU_VEVENTQ_ALLOC, .veventqAlloc, &command, IOMMUErrorContext(objectID: viommu), fileID: fileID, line: line)
        return (command.out_veventq_id, Int32(bitPattern: command.out_veventq_fd))
    }

    /// `IOMMU_HW_QUEUE_ALLOC`: the vIOMMU's hardware queue `index` of `type` in guest memory
    /// at `[iova, iova + length)` of the nesting parent's IOAS, which stays pinned while the
    /// queue lives; returns the queue's id.
    package static func hwQueueAlloc(_ seam: IOCTLSeam, _ fd: Int32, viommu: UInt32, type: UInt32, index: UInt32, iova: UInt64, length: UInt64,
                                     flags: UInt32 = 0, fileID: StaticString, line: Int) throws(IOMMUError) -> UInt32 {
        var command = iommu_hw_queue_alloc()
        command.size = UInt32(MemoryLayout<iommu_hw_queue_alloc>.size)
        command.flags = flags
        command.viommu_id = viommu
        command.type = type
        command.index = index
        command.nesting_parent_iova = iova
        command.length = length
        try issueIOCTL(seam, fd, IOMMU_HW_QUEUE_ALLOC, .hwQueueAlloc, &command,
                       IOMMUErrorContext(objectID: viommu, iova: iova, length: length), fileID: fileID, line: line)
        return command.out_hw_queue_id
    }

    /// `IOMMU_IOAS_CHANGE_PROCESS`: moves the pinned-page accounting of every mapping of the
    /// context to the calling process (every mapping must come from a memfd).
    package static func changeProcess(_ seam: IOCTLSeam, _ fd: Int32, reserved: UInt32 = 0, fileID: StaticString, line: Int) throws(IOMMUError) {
        var command = iommu_ioas_change_process()
        command.size = UInt32(MemoryLayout<iommu_ioas_change_process>.size)
        command.__reserved = reserved
        try issueIOCTL(seam, fd, IOMMU_IOAS_CHANGE_PROCESS, .ioasChangeProcess, &command, IOMMUErrorContext(), fileID: fileID, line: line)
    }

    /// `IOMMU_IOAS_NOIOMMU_GET_PA`: the physical address behind `iova` of an IOAS whose
    /// domain is the no-IOMMU software table, and how many bytes from it are physically
    /// contiguous (at most `length`).
    package static func noIOMMUGetPA(_ seam: IOCTLSeam, _ fd: Int32, ioas: UInt32, iova: UInt64, length: UInt64,
                                     fileID: StaticString, line: Int) throws(IOMMUError) -> (address: UInt64, length: UInt64) {
        var command = iommu_ioas_noiommu_get_pa()
        command.size = UInt32(MemoryLayout<iommu_ioas_noiommu_get_pa>.size)
        command.ioas_id = ioas
        command.iova = iova
        command.length = length
        try issueIOCTL(seam, fd, IOMMU_IOAS_NOIOMMU_GET_PA, .ioasNoIOMMUGetPA, &command,
                       IOMMUErrorContext(objectID: ioas, iova: iova, length: length), fileID: fileID, line: line)
        return (command.out_phys, command.length)
    }

    /// `IOMMU_FAULT_QUEUE_ALLOC`: a queue for the IO page faults of HWPTs allocated with it;
    /// returns its id and its descriptor (close-on-exec), which the caller owns.
    package static func faultQueueAlloc(_ seam: IOCTLSeam, _ fd: Int32, flags: UInt32 = 0,
                                        fileID: StaticString, line: Int) throws(IOMMUError) -> (id: UInt32, fd: Int32) {
        var command = iommu_fault_alloc()
        command.size = UInt32(MemoryLayout<iommu_fault_alloc>.size)
        command.flags = flags
        try issueIOCTL(seam, fd, IOMMU_FAULT_QUEUE_ALLOC, .faultQueueAlloc, &command, IOMMUErrorContext(), fileID: fileID, line: line)
        return (command.out_fault_id, Int32(bitPattern: command.out_fault_fd))
    }

    /// `IOMMU_HWPT_INVALIDATE`: hands `entryCount` entries of `entryLength` bytes each, in
    /// the format `dataType`, to the cache of a nested HWPT or a vIOMMU (`pageTable`), and
    /// returns how many it handled. The kernel writes that count back on every path and
    /// stops at the first bad entry: on a failure it is the error's `context.handledCount`.
    /// No entries asks only whether the object and the format are accepted.
    @unsafe
    package static func hwptInvalidate(_ seam: IOCTLSeam, _ fd: Int32, pageTable: UInt32, dataType: UInt32,
                                       entries: UnsafeRawPointer?, entryLength: UInt32, entryCount: UInt32,
                                       fileID: StaticString, line: Int) throws(IOMMUError) -> UInt32 {
        var command = iommu_hwpt_invalidate()
        command.size = UInt32(MemoryLayout<iommu_hwpt_invalidate>.size)
        command.hwpt_id = pageTable
        command.data_uptr = UInt64(UInt(bitPattern: entries))
        command.data_type = dataType
        command.entry_len = entryLength
        command.entry_num = entryCount
        do {
            try issueIOCTL(seam, fd, IOMMU_HWPT_INVALIDATE, .hwptInvalidate, &command,
                           IOMMUErrorContext(objectID: pageTable), fileID: fileID, line: line)
        } catch var error {
            error.context.handledCount = command.entry_num
            throw error
        }
        return command.entry_num
    }

    /// `IOMMU_HWPT_GET_DIRTY_BITMAP`: sets, in `bitmap` (one bit per `pageSize` page from
    /// `iova`, in 64-bit words), the bits of the pages written since the last read; clears
    /// them in the page table unless `flags` has `NO_CLEAR`. The kernel only sets bits.
    @unsafe
    package static func hwptGetDirtyBitmap(_ seam: IOCTLSeam, _ fd: Int32, hwpt: UInt32, iova: UInt64, length: UInt64, pageSize: UInt64,
                                           flags: UInt32, bitmap: UnsafeMutableRawBufferPointer,
                                           fileID: StaticString, line: Int) throws(IOMMUError) {
        var command = iommu_hwpt_get_dirty_bitmap()
        command.size = UInt32(MemoryLayout<iommu_hwpt_get_dirty_bitmap>.size)
        command.hwpt_id = hwpt
        command.flags = flags
        command.iova = iova
        command.length = length
        command.page_size = pageSize
        command.data = UInt64(UInt(bitPattern: bitmap.baseAddress))
        try issueIOCTL(seam, fd, IOMMU_HWPT_GET_DIRTY_BITMAP, .hwptGetDirtyBitmap, &command,
                       IOMMUErrorContext(objectID: hwpt, iova: iova, length: length), fileID: fileID, line: line)
    }

    /// `IOMMU_IOAS_ALLOW_IOVAS`: replaces the IOAS's allowed ranges with `ranges` (none clears them).
    @inlinable
    package static func ioasAllowIOVAs(_ seam: IOCTLSeam, _ fd: Int32, ioas: UInt32,
                                       ranges: UnsafeBufferPointer<iommu_iova_range>,
                                       fileID: StaticString, line: Int) throws(IOMMUError) {
        var command = iommu_ioas_allow_iovas()
        command.size = UInt32(MemoryLayout<iommu_ioas_allow_iovas>.size)
        command.ioas_id = ioas
        command.num_iovas = UInt32(ranges.count)
        command.allowed_iovas = UInt64(UInt(bitPattern: ranges.baseAddress))
        try issueIOCTL(seam, fd, IOMMU_IOAS_ALLOW_IOVAS, .ioasAllowIOVAs, &command, IOMMUErrorContext(objectID: ioas),
                       fileID: fileID, line: line)
    }

    /// `IOMMU_IOAS_COPY`: maps the pages behind `[sourceIOVA, sourceIOVA + length)` of `source`
    /// into `destination`; returns the destination IOVA.
    @inlinable @inline(__always)
    package static func ioasCopy(_ seam: IOCTLSeam, _ fd: Int32, destination: UInt32, source: UInt32,
                                 flags: UInt32, length: UInt64, destinationIOVA: UInt64, sourceIOVA: UInt64,
                                 fileID: StaticString, line: Int) throws(IOMMUError) -> UInt64 {
        var command = iommu_ioas_copy()
        command.size = UInt32(MemoryLayout<iommu_ioas_copy>.size)
        command.flags = flags
        command.dst_ioas_id = destination
        command.src_ioas_id = source
        command.length = length
        command.dst_iova = destinationIOVA
        command.src_iova = sourceIOVA
        try issueIOCTL(seam, fd, IOMMU_IOAS_COPY, .ioasCopy, &command,
                       IOMMUErrorContext(objectID: destination, otherObjectID: source, iova: sourceIOVA, length: length),
                       reportsMemlockLimit: true, fileID: fileID, line: line)
        return command.dst_iova
    }

    /// The answer of `IOMMU_IOAS_IOVA_RANGES`.
    package struct IOVARangesAnswer {
        /// How many ranges the IOAS has (all of them were written when it fits).
        package var count: UInt32
        /// `out_iova_alignment`.
        package var alignment: UInt64
    }

    /// `IOMMU_IOAS_IOVA_RANGES` once: writes up to `entries.count` ranges. When they do not
    /// fit, the kernel answers `EMSGSIZE` and the error's `context.reportedCount` says how
    /// many there are (see ``IOAS/iovaRanges(fileID:line:)`` for the two-call exchange).
    @inlinable
    package static func ioasIOVARanges(_ seam: IOCTLSeam, _ fd: Int32, ioas: UInt32,
                                       into entries: UnsafeMutableBufferPointer<iommu_iova_range>,
                                       fileID: StaticString, line: Int) throws(IOMMUError) -> IOVARangesAnswer {
        var command = iommu_ioas_iova_ranges()
        command.size = UInt32(MemoryLayout<iommu_ioas_iova_ranges>.size)
        command.ioas_id = ioas
        command.num_iovas = UInt32(entries.count)
        command.allowed_iovas = entries.isEmpty ? 0 : UInt64(UInt(bitPattern: entries.baseAddress))
        do {
            try issueIOCTL(seam, fd, IOMMU_IOAS_IOVA_RANGES, .ioasIOVARanges, &command, IOMMUErrorContext(objectID: ioas),
                           fileID: fileID, line: line)
        } catch {
            var error = error
            error.context.reportedCount = command.num_iovas
            throw error
        }
        return IOVARangesAnswer(count: command.num_iovas, alignment: command.out_iova_alignment)
    }

    /// `IOMMU_IOAS_MAP`: maps `[userAddress, userAddress + length)`; returns the IOVA (the
    /// kernel's choice unless `flags` has `IOMMU_IOAS_MAP_FIXED_IOVA`). An `ENOMEM` carries
    /// the memlock limit in force.
    @inlinable @inline(__always)
    package static func ioasMap(_ seam: IOCTLSeam, _ fd: Int32, ioas: UInt32, flags: UInt32,
                                userAddress: UInt64, length: UInt64, iova: UInt64,
                                fileID: StaticString, line: Int) throws(IOMMUError) -> UInt64 {
        var command = iommu_ioas_map(size: UInt32(MemoryLayout<iommu_ioas_map>.size), flags: flags, ioas_id: ioas, __reserved: 0,
                                     user_va: userAddress, length: length, iova: iova)
        try issueIOCTL(seam, fd, IOMMU_IOAS_MAP, .ioasMap, &command,
                       IOMMUErrorContext(objectID: ioas, iova: flags & IOMMU_IOAS_MAP_FIXED_IOVA != 0 ? iova : nil,
                                         length: length, userAddress: userAddress),
                       reportsMemlockLimit: true, fileID: fileID, line: line)
        return command.iova
    }

    /// `IOMMU_IOAS_MAP_FILE`: maps `[start, start + length)` of a memfd or dma-buf; returns the IOVA.
    @inlinable @inline(__always)
    package static func ioasMapFile(_ seam: IOCTLSeam, _ fd: Int32, ioas: UInt32, flags: UInt32,
                                    fileDescriptor: Int32, start: UInt64, length: UInt64, iova: UInt64,
                                    fileID: StaticString, line: Int) throws(IOMMUError) -> UInt64 {
        var command = iommu_ioas_map_file()
        command.size = UInt32(MemoryLayout<iommu_ioas_map_file>.size)
        command.flags = flags
        command.ioas_id = ioas
        command.fd = fileDescriptor
        command.start = start
        command.length = length
        command.iova = iova
        try issueIOCTL(seam, fd, IOMMU_IOAS_MAP_FILE, .ioasMapFile, &command,
                       IOMMUErrorContext(objectID: ioas, iova: flags & IOMMU_IOAS_MAP_FIXED_IOVA != 0 ? iova : nil,
                                         length: length, fileDescriptor: fileDescriptor),
                       reportsMemlockLimit: true, fileID: fileID, line: line)
        return command.iova
    }

    /// `IOMMU_IOAS_UNMAP`: unmaps every mapping inside `[iova, iova + length)`; returns the bytes unmapped.
    @inlinable @inline(__always)
    package static func ioasUnmap(_ seam: IOCTLSeam, _ fd: Int32, ioas: UInt32, iova: UInt64, length: UInt64,
                                  fileID: StaticString, line: Int) throws(IOMMUError) -> UInt64 {
        var command = iommu_ioas_unmap(size: UInt32(MemoryLayout<iommu_ioas_unmap>.size), ioas_id: ioas, iova: iova, length: length)
        try issueIOCTL(seam, fd, IOMMU_IOAS_UNMAP, .ioasUnmap, &command, IOMMUErrorContext(objectID: ioas, iova: iova, length: length),
                       fileID: fileID, line: line)
        return command.length
    }

    /// `IOMMU_VFIO_IOAS`: gets (`op` = `IOMMU_VFIO_IOAS_GET`), sets or clears
    /// the IOAS that the type1 compatibility layer uses; returns `ioas_id` as the kernel left it.
    @inlinable
    package static func vfioIOAS(_ seam: IOCTLSeam, _ fd: Int32, op: UInt16, ioas: UInt32,
                                 fileID: StaticString, line: Int) throws(IOMMUError) -> UInt32 {
        var command = iommu_vfio_ioas(size: UInt32(MemoryLayout<iommu_vfio_ioas>.size), ioas_id: ioas, op: op, __reserved: 0)
        try issueIOCTL(seam, fd, IOMMU_VFIO_IOAS, .vfioIOAS, &command, IOMMUErrorContext(objectID: ioas), fileID: fileID, line: line)
        return command.ioas_id
    }

    /// `IOMMU_OPTION`: gets (`op` = `IOMMU_OPTION_OP_GET`) or sets an option of the context
    /// (`object` 0) or of an object; returns `val64` as the kernel left it.
    @inlinable
    package static func option(_ seam: IOCTLSeam, _ fd: Int32, option: UInt32, op: UInt16, object: UInt32, value: UInt64,
                               fileID: StaticString, line: Int) throws(IOMMUError) -> UInt64 {
        var command = iommu_option()
        command.size = UInt32(MemoryLayout<iommu_option>.size)
        command.option_id = option
        command.op = op
        command.object_id = object
        command.val64 = value
        try issueIOCTL(seam, fd, IOMMU_OPTION, .option, &command, IOMMUErrorContext(objectID: object), fileID: fileID, line: line)
        return command.val64
    }

    /// The answer of `IOMMU_GET_HW_INFO`.
    package struct HardwareInfoAnswer {
        /// `out_data_type`: which vendor structure the kernel wrote.
        package var dataType: UInt32
        /// `data_len` as the kernel rewrote it: the length of its own structure.
        package var dataLength: UInt32
        /// `out_capabilities`.
        package var capabilities: UInt64
        /// `out_max_pasid_log2`.
        package var maxPASIDLog2: UInt8
    }

    /// `IOMMU_GET_HW_INFO`: the IOMMU's registers for a bound device, into `data`.
    @inlinable
    package static func getHardwareInfo(_ seam: IOCTLSeam, _ fd: Int32, device: UInt32, flags: UInt32, dataType: UInt32,
                                        into data: UnsafeMutableRawBufferPointer,
                                        fileID: StaticString, line: Int) throws(IOMMUError) -> HardwareInfoAnswer {
        var command = iommu_hw_info()
        command.size = UInt32(MemoryLayout<iommu_hw_info>.size)
        command.flags = flags
        command.dev_id = device
        command.data_len = UInt32(data.count)
        command.data_uptr = UInt64(UInt(bitPattern: data.baseAddress))
        command.in_data_type = dataType
        try issueIOCTL(seam, fd, IOMMU_GET_HW_INFO, .getHWInfo, &command, IOMMUErrorContext(objectID: device), fileID: fileID, line: line)
        return HardwareInfoAnswer(dataType: command.out_data_type, dataLength: command.data_len,
                                  capabilities: command.out_capabilities, maxPASIDLog2: command.out_max_pasid_log2)
    }

    /// The documented presence probe: `operation` with `size = 0` over zeroed room for the
    /// largest command. Returns `true` when the kernel knows the command (`EINVAL`), `false`
    /// for `ENOTTY`; throws anything else.
    package static func probe(_ seam: IOCTLSeam, _ fd: Int32, _ operation: IOMMUOperation,
                              fileID: StaticString, line: Int) throws(IOMMUError) -> Bool {
        guard let descriptor = operation.ioctl else { preconditionFailure("\(operation) is not an ioctl") }
        var room = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        do {
            try issueIOCTL(seam, fd, descriptor.request, operation, &room, IOMMUErrorContext(), fileID: fileID, line: line)
        } catch let error where error.errno == .invalidArgument {
            return true
        } catch let error where error.errno == .inappropriateIOCTLForDevice {
            return false
        }
        // A size-0 command cannot succeed; count success as "present but odd".
        return true
    }

    /// Any request on any descriptor with the caller's bytes, for the size-field ABI tests
    /// and the scenarios' `raw` step (undersized, oversized and NULL arguments, unknown
    /// numbers). Throws the bare errno: there is no operation to name.
    package static func raw(_ seam: IOCTLSeam, _ fd: Int32, request: UInt,
                            argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
        try unsafe seam.system.ioctl(fd, request, argument)
    }
}
