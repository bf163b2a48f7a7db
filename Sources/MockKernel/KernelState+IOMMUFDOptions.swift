import IOMMUFDSystem
import CIOMMUFD
import SystemPackage

// IOMMU_OPTION, IOMMU_VFIO_IOAS, IOMMU_IOAS_CHANGE_PROCESS, and the commands the model does not have.
extension KernelState {
    // MARK: Options

    mutating func option(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        var cmd = unsafe command.load(iommu_option.self)
        guard cmd.__reserved == 0 else { throw .notSupported }
        switch cmd.option_id {
        case IOMMU_OPTION_RLIMIT_MODE:
            guard cmd.object_id == 0 else { throw .notSupported }
            if cmd.op == IOMMU_OPTION_OP_GET {
                cmd.val64 = contexts[contextID]!.accountingMode
            } else if cmd.op == IOMMU_OPTION_OP_SET {
                guard configuration.hasSysResource else { throw .notPermitted }
                guard contexts[contextID]!.objects.isEmpty else { throw .resourceBusy }
                guard cmd.val64 <= 1 else { throw .invalidArgument }
                contexts[contextID]!.accountingMode = cmd.val64
            } else {
                throw .notSupported
            }
        case IOMMU_OPTION_HUGE_PAGES:
            guard var table = contexts[contextID]!.ioas(cmd.object_id) else { throw .noSuchFileOrDirectory }
            if cmd.op == IOMMU_OPTION_OP_GET {
                cmd.val64 = table.disableLargePages ? 0 : 1
            } else if cmd.op == IOMMU_OPTION_OP_SET {
                switch cmd.val64 {
                case 0 where !table.disableLargePages:
                    // iopt_disable_large_pages
                    if !table.domains.isEmpty && !table.areas(overlapping: 0...ulongMax).isEmpty { throw .invalidArgument }
                    let before = table.iovaAlignment
                    table.disableLargePages = true
                    if table.iovaAlignment > before && !table.areasConform(to: table.iovaAlignment) { throw .addressInUse }
                case 0:
                    break
                case 1:
                    table.disableLargePages = false
                default:
                    throw .invalidArgument
                }
                contexts[contextID]!.objects[cmd.object_id] = .ioas(table)
            } else {
                throw .notSupported
            }
        default:
            throw .notSupported
        }
        // iommufd_option writes back val64 only.
        var answer = unsafe command.user.loadUnaligned(as: iommu_option.self)
        answer.val64 = cmd.val64
        unsafe command.user.storeBytes(of: answer.val64, toByteOffset: 16, as: UInt64.self)
    }

    mutating func vfioIOAS(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        var cmd = unsafe command.load(iommu_vfio_ioas.self)
        guard cmd.__reserved == 0 else { throw .notSupported }
        switch cmd.op {
        case IOMMU_VFIO_IOAS_GET:
            // get_compat_ioas (vfio_compat.c:15-26): no compat IOAS is ENODEV.
            guard let id = contexts[contextID]!.vfioIOAS else { throw .operationNotSupportedByDevice }
            cmd.ioas_id = id
            unsafe command.respond(cmd)
        case IOMMU_VFIO_IOAS_SET:
            guard contexts[contextID]!.ioas(cmd.ioas_id) != nil else { throw .noSuchFileOrDirectory }
            contexts[contextID]!.vfioIOAS = cmd.ioas_id
        case IOMMU_VFIO_IOAS_CLEAR:
            contexts[contextID]!.vfioIOAS = nil
        default:
            throw .notSupported
        }
    }

    mutating func ioasChangeProcess(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        let cmd = unsafe command.load(iommu_ioas_change_process.self)
        guard cmd.__reserved == 0 else { throw .notSupported }
        // Only file-backed mappings can move to another process (ioas.c:575-584).
        for pages in contexts[contextID]!.pages.values {
            switch pages.source {
            case .user, .dmaBuf: throw .invalidArgument
            case .file, .unpinnableFile: break
            }
        }
        // Moving pins charged to another process between its counters is not modelled (the
        // model charges the running process): refused loudly. With nothing pinned
        // elsewhere, only the owner changes (change_mm, ioas.c:531-547, 610-622).
        let current = configuration.processID
        let movesPins = contexts[contextID]!.pages.contains { id, pages in
            pages.ownerProcess != current && !(contexts[contextID]!.pinned[id]?.isEmpty ?? true)
        }
        if movesPins {
            unmodelledCalls.append(.ioasChangeProcess)
            throw .noFunction
        }
        for id in contexts[contextID]!.pages.keys { contexts[contextID]!.pages[id]!.ownerProcess = current }
    }

    /// The commands the model answers only as far as the kernel's argument checks go; past
    /// them, it refuses loudly: `ENOSYS` (no kernel answers an implemented iommufd command
    /// that way) and the call is recorded in ``MockKernel/unmodelledCalls``, so a test that
    /// leans on one fails visibly instead of learning an invented answer.
    mutating func unmodelledCommand(_ contextID: Int, _ operation: IOMMUOperation, _ command: UserCommand) throws(Errno) {
        switch operation {
        case .hwptAlloc:
            return unsafe try hardwarePageTableAlloc(contextID, command)
        case .getHWInfo:
            return unsafe try getHardwareInfo(contextID, command)
        case .viommuAlloc:
            return unsafe try viommuAlloc(contextID, command)
        case .vdeviceAlloc:
            return unsafe try vdeviceAlloc(contextID, command)
        case .veventqAlloc:
            return unsafe try veventqAlloc(contextID, command)
        case .hwQueueAlloc:
            return unsafe try hwQueueAlloc(contextID, command)
        case .faultQueueAlloc:
            return unsafe try faultQueueAlloc(contextID, command)
        case .hwptInvalidate:
            return unsafe try hardwarePageTableInvalidate(contextID, command)
        case .hwptSetDirtyTracking:
            // iommufd_hwpt_set_dirty_tracking (hw_pagetable.c:457-480): unknown flags
            // (EOPNOTSUPP; __reserved is not looked at), then a paging HWPT (ENOENT for
            // anything else); dirty tracking itself is not modelled.
            let cmd = unsafe command.load(iommu_hwpt_set_dirty_tracking.self)
            guard cmd.flags & ~IOMMU_HWPT_DIRTY_TRACKING_ENABLE == 0 else { throw .notSupported }
            guard var hwpt = contexts[contextID]!.hwptPaging(cmd.hwpt_id) else { throw .noSuchFileOrDirectory }
            // iopt_set_dirty_tracking (io_pagetable.c): no dirty operations EOPNOTSUPP;
            // enabling clears what was dirty first, a clean snapshot.
            guard hwpt.tracksDirty else { throw .notSupported }
            let enable = cmd.flags & IOMMU_HWPT_DIRTY_TRACKING_ENABLE != 0
            if enable { hwpt.dirtyPages.removeAll() }
            hwpt.dirtyTracking = enable
            contexts[contextID]!.objects[cmd.hwpt_id] = .hwptPaging(hwpt)
            return
        case .hwptGetDirtyBitmap:
            // iommufd_hwpt_get_dirty_bitmap (hw_pagetable.c:482-503): unknown flags or
            // __reserved (EOPNOTSUPP), then a paging HWPT (ENOENT); the bitmap is not modelled.
            let cmd = unsafe command.load(iommu_hwpt_get_dirty_bitmap.self)
            guard cmd.flags & ~IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR == 0, cmd.__reserved == 0 else { throw .notSupported }
            guard contexts[contextID]!.hwptPaging(cmd.hwpt_id) != nil else { throw .noSuchFileOrDirectory }
            return try readDirtyBitmap(contextID, cmd)
        case .ioasNoIOMMUGetPA:
            // iommufd_ioas_noiommu_get_pa (ioas.c:379-396): the kernel's configuration, the
            // capability, the arguments, the IOAS, then the address (KernelState+NoIOMMU.swift).
            guard configuration.noIOMMUEnabled else { throw .notSupported }
            guard configuration.hasSysRawIO else { throw .notPermitted }
            let cmd = unsafe command.load(iommu_ioas_noiommu_get_pa.self)
            guard cmd.flags == 0, cmd.__reserved == 0 else { throw .notSupported }
            guard cmd.length != 0 else { throw .invalidArgument }
            guard cmd.iova < ulongMax else { throw .overflow }
            guard contexts[contextID]!.ioas(cmd.ioas_id) != nil else { throw .noSuchFileOrDirectory }
            return unsafe try noIOMMUPhysicalAddress(contextID, command)
        default:
            break
        }
        unmodelledCalls.append(operation)
        throw .noFunction
    }

    /// The rest of `IOMMU_HWPT_GET_DIRTY_BITMAP` (io_pagetable.c:540-660): the range against
    /// the IOAS's alignment and the page size (EINVAL, EOVERFLOW), a HWPT without dirty
    /// operations (EOPNOTSUPP), then the walk over the contiguous areas from `iova`, which
    /// stops at the first hole and still answers success; each dirty I/O page sets the bit
    /// of the `page_size` page it lies in (bits are only set, never cleared, in the user's
    /// bitmap) and is cleared unless `NO_CLEAR`. The model's leaves are single I/O pages;
    /// the kernel's mock IOMMU (AMDv1) maps physically contiguous pages with larger leaves
    /// and keeps one dirty bit per leaf, so below a mapping's size the two can differ (the
    /// scenarios and probes mark and read whole mappings).
    mutating func readDirtyBitmap(_ contextID: Int, _ cmd: iommu_hwpt_get_dirty_bitmap) throws(Errno) {
        var hwpt = contexts[contextID]!.hwptPaging(cmd.hwpt_id)!
        let table = contexts[contextID]!.ioas(hwpt.ioasID)!
        guard cmd.length != 0 else { throw .invalidArgument }
        let (last, overflow) = cmd.iova.addingReportingOverflow(cmd.length - 1)
        guard !overflow else { throw .overflow }
        let alignment = table.iovaAlignment
        guard cmd.iova % alignment == 0, (last &+ 1) % alignment == 0, cmd.page_size != 0,
              cmd.iova % cmd.page_size == 0, (last &+ 1) % cmd.page_size == 0 else { throw .invalidArgument }
        guard hwpt.tracksDirty else { throw .notSupported }
        var cursor = cmd.iova
        while cursor <= last, let area = table.areas(overlapping: cursor...cursor).first {
            let end = min(last, area.last)
            for page in hwpt.dirtyPages.sorted() where page >= cursor && page <= end {
                let bit = (page - cmd.iova) / cmd.page_size
                if let word = unsafe UnsafeMutableRawPointer(bitPattern: UInt(cmd.data + (bit / 64) * 8)) {
                    let value = unsafe word.loadUnaligned(as: UInt64.self)
                    unsafe word.storeBytes(of: value | 1 << (bit % 64), as: UInt64.self)
                }
                if cmd.flags & IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR == 0 { hwpt.dirtyPages.remove(page) }
            }
            guard end < last else { break }
            cursor = end + 1
        }
        contexts[contextID]!.objects[cmd.hwpt_id] = .hwptPaging(hwpt)
    }

    /// `IOMMU_HWPT_ALLOC`, in the order of `iommufd_hwpt_alloc` (hw_pagetable.c:345-455):
    /// `__reserved` (EOPNOTSUPP); the data type/length pair (EINVAL); the device (ENOENT); a
    /// `pt_id` that does not resolve, or is neither an IOAS nor a paging HWPT, is EINVAL, not
    /// ENOENT. On an IOAS, a paging HWPT as `iommufd_hwpt_paging_alloc` makes it: unknown
    /// flags, dirty tracking the device's IOMMU cannot do, or a fault queue on a nesting
    /// parent are EOPNOTSUPP, then the driver's own refusals (intel-iommu in QEMU 7.2: no
    /// user data, no nesting parent; the selftest IOMMU: its own data type, see
    /// ``selftestPagingData(_:)``), then the domain joins the IOAS (its aperture reserved,
    /// existing areas pinned). On a paging HWPT, a nested HWPT (``nestedHWPT(_:_:parentID:parent:)``).
    /// A fault queue id is looked up last (``bindFaultQueue(_:hwptID:faultID:)``).
    mutating func hardwarePageTableAlloc(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        var cmd = unsafe command.load(iommu_hwpt_alloc.self)
        guard cmd.__reserved == 0 else { throw .notSupported }
        guard (cmd.data_type == IOMMU_HWPT_DATA_NONE) == (cmd.data_len == 0) else { throw .invalidArgument }
        guard case .device(let device)? = contexts[contextID]!.objects[cmd.dev_id] else { throw .noSuchFileOrDirectory }
        guard let target = contexts[contextID]!.objects[cmd.pt_id] else { throw .invalidArgument }
        let flags = cmd.flags
        switch target {
        case .ioas:
            let valid = IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_DIRTY_TRACKING | IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID
            guard flags & ~valid == 0 else { throw .notSupported }
            if flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING != 0 && !device.tracksDirty { throw .notSupported }
            if flags & IOMMU_HWPT_FAULT_ID_VALID != 0 && flags & IOMMU_HWPT_ALLOC_NEST_PARENT != 0 { throw .notSupported }
            var hwpt = MockHWPT(ioasID: cmd.pt_id, autoDomain: false, driver: device.iommu.driver, ioPageSize: device.iommu.ioPageSize,
                                aperture: device.iommu.aperture, flags: flags & ~IOMMU_HWPT_FAULT_ID_VALID)
            switch device.iommu {
            case .intel:
                // intel_iommu_domain_alloc_paging_flags: no user data; without scalable mode only
                // the second stage, which refuses a nesting parent (intel/iommu.c:3027-3028, 2953-2958).
                if cmd.data_len != 0 || flags & IOMMU_HWPT_ALLOC_NEST_PARENT != 0 { throw .notSupported }
            case .none:
                // iommufd_noiommu_ops (hwpt_noiommu.c:47-48): no flags, no user data.
                if cmd.data_len != 0 || flags != 0 { throw .notSupported }
            case .selftest:
                if cmd.data_len != 0 {
                    guard cmd.data_type == IOMMU_HWPT_DATA_SELFTEST else { throw .notSupported }
                    let data = try selftestHWPTData(cmd)
                    try selftestPagingData(data, applyingTo: &hwpt)
                }
            }
            let hwptID = contexts[contextID]!.insert(.hwptPaging(hwpt))
            try addDomain(contextID, ioasID: cmd.pt_id, hwptID: hwptID, ioPageSize: hwpt.ioPageSize, aperture: hwpt.aperture)
            cmd.out_hwpt_id = hwptID
        case .hwptPaging(let parent):
            cmd.out_hwpt_id = try nestedHWPT(contextID, cmd, device: device, parent: parent)
        case .viommu(let viommu):
            cmd.out_hwpt_id = try nestedHWPT(contextID, cmd, device: device, viommu: viommu)
        default:
            throw .invalidArgument
        }
        if flags & IOMMU_HWPT_FAULT_ID_VALID != 0 { try bindFaultQueue(contextID, hwptID: cmd.out_hwpt_id, faultID: cmd.fault_id) }
        unsafe command.respond(cmd)
    }

    /// `mock_domain_alloc_pgtable` (selftest.c:423-480) for the data's `pagetable_type`:
    /// `MOCK_IOMMUPT_DEFAULT` keeps the mock aperture and 2 KiB pages; `MOCK_IOMMUPT_HUGE`
    /// takes only 1 MiB pages and PAGE_SIZE (so the IOAS's alignment is PAGE_SIZE) over the
    /// whole 56-bit space; anything else is EOPNOTSUPP.
    func selftestPagingData(_ data: iommu_hwpt_selftest, applyingTo hwpt: inout MockHWPT) throws(Errno) {
        switch data.pagetable_type {
        case 0:
            break
        case 1:
            hwpt.ioPageSize = UInt64(pageSize)
            hwpt.aperture = 0...((1 << 56) - 1)
        default:
            throw .notSupported
        }
    }

    /// `iommu_copy_struct_from_user(&cfg, data, IOMMU_HWPT_DATA_SELFTEST, iotlb)`
    /// (include/linux/iommu.h:466-493): at least up to `iotlb` (4 bytes), at most the
    /// kernel's struct (8 bytes), else EINVAL; an unreadable pointer is EFAULT.
    func selftestHWPTData(_ cmd: iommu_hwpt_alloc) throws(Errno) -> iommu_hwpt_selftest {
        let size = MemoryLayout<iommu_hwpt_selftest>.size
        guard cmd.data_len >= 4, Int(cmd.data_len) <= size else { throw .invalidArgument }
        // The data usually sits on the caller's stack, outside the modelled mmaps: only NULL faults.
        guard let source = unsafe UnsafeRawPointer(bitPattern: UInt(cmd.data_uptr)) else { throw .badAddress }
        var data = iommu_hwpt_selftest()
        unsafe withUnsafeMutableBytes(of: &data) { unsafe $0.copyMemory(from: UnsafeRawBufferPointer(start: source, count: Int(cmd.data_len))) }
        return data
    }

    /// A nested HWPT on the paging HWPT `parent`, as `iommufd_hwpt_nested_alloc`
    /// (hw_pagetable.c:238-285) checks it: flags other than PASID and a fault queue, or no
    /// data, are EOPNOTSUPP; a parent
    /// that is automatic, not a nesting parent or of another driver is EINVAL. Then the
    /// selftest driver's `mock_domain_alloc_nested` (selftest.c:343-389): flags other than
    /// PASID and a data type other than its own are EOPNOTSUPP, the data is copied as for a
    /// paging HWPT, and every IOTLB entry starts as the data's `iotlb`. Returns the new id.
    mutating func nestedHWPT(_ contextID: Int, _ cmd: iommu_hwpt_alloc, device: MockBoundDevice, parent: MockHWPT) throws(Errno) -> UInt32 {
        let flags = cmd.flags
        // Both drivers have `domain_alloc_nested`, so the core goes on to the parent.
        guard flags & ~(IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID) == 0, cmd.data_len != 0 else { throw .notSupported }
        guard !parent.autoDomain, parent.flags & IOMMU_HWPT_ALLOC_NEST_PARENT != 0, parent.driver == device.iommu.driver else {
            throw .invalidArgument
        }
        // intel-iommu never gets here in QEMU 7.2 (it cannot make a nesting parent); if it
        // did, no nesting support is EOPNOTSUPP (intel/nested.c:207-208).
        guard device.iommu.driver == .selftest else { throw .notSupported }
        guard cmd.data_type == IOMMU_HWPT_DATA_SELFTEST else { throw .notSupported }
        let data = try selftestHWPTData(cmd)
        let nested = MockNestedHWPT(parentID: cmd.pt_id, driver: .selftest, flags: flags & ~IOMMU_HWPT_FAULT_ID_VALID,
                                    iotlb: Array(repeating: data.iotlb, count: Int(MOCK_NESTED_DOMAIN_IOTLB_NUM)))
        return contexts[contextID]!.insert(.hwptNested(nested))
    }

    /// A nested HWPT on the vIOMMU `viommu` (hw_pagetable.c:297-343, 401-418): a device
    /// behind another IOMMU is EINVAL; flags other than PASID and a fault queue, or no data,
    /// EOPNOTSUPP; then the selftest vIOMMU's `mock_viommu_alloc_domain_nested`
    /// (selftest.c:616-631), which takes the selftest data as a nested HWPT on a parent
    /// does, without looking at the parent. The nested HWPT holds the vIOMMU.
    mutating func nestedHWPT(_ contextID: Int, _ cmd: iommu_hwpt_alloc, device: MockBoundDevice, viommu: MockVIOMMU) throws(Errno) -> UInt32 {
        guard device.iommu.driver == viommu.driver else { throw .invalidArgument }
        guard cmd.flags & ~(IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID) == 0, cmd.data_len != 0 else { throw .notSupported }
        guard cmd.data_type == IOMMU_HWPT_DATA_SELFTEST else { throw .notSupported }
        let data = try selftestHWPTData(cmd)
        let nested = MockNestedHWPT(parentID: viommu.parentID, viommuID: cmd.pt_id, driver: viommu.driver,
                                    flags: cmd.flags & ~IOMMU_HWPT_FAULT_ID_VALID,
                                    iotlb: Array(repeating: data.iotlb, count: Int(MOCK_NESTED_DOMAIN_IOTLB_NUM)))
        return contexts[contextID]!.insert(.hwptNested(nested))
    }

    /// `IOMMU_VIOMMU_ALLOC`, in the order of `iommufd_viommu_alloc_ioctl` (viommu.c:17-117):
    /// flags, or the default type 0 (EOPNOTSUPP, before any lookup); the device (ENOENT);
    /// a type its driver does not offer (EOPNOTSUPP: only the selftest driver has vIOMMUs
    /// here, of type 0xdeadbeef); the HWPT, which must be a paging HWPT (ENOENT otherwise)
    /// allocated as a nesting parent (EINVAL); `__reserved` is not looked at. Then
    /// `mock_viommu_init` (selftest.c:793-846): with data, at least up to `out_data` and at
    /// most its struct (EINVAL otherwise); it echoes `in_data` and offers a two-page region
    /// to mmap, at the lowest free offset from PAGE_SIZE. The vIOMMU holds its parent.
    mutating func viommuAlloc(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        var cmd = unsafe command.load(iommu_viommu_alloc.self)
        guard cmd.flags == 0, cmd.type != IOMMU_VIOMMU_TYPE_DEFAULT else { throw .notSupported }
        guard case .device(let device)? = contexts[contextID]!.objects[cmd.dev_id] else { throw .noSuchFileOrDirectory }
        guard device.iommu.driver == .selftest, cmd.type == IOMMU_VIOMMU_TYPE_SELFTEST else { throw .notSupported }
        guard let parent = contexts[contextID]!.hwptPaging(cmd.hwpt_id) else { throw .noSuchFileOrDirectory }
        guard parent.flags & IOMMU_HWPT_ALLOC_NEST_PARENT != 0 else { throw .invalidArgument }
        var viommu = MockVIOMMU(parentID: cmd.hwpt_id, driver: .selftest, type: cmd.type)
        if cmd.data_len != 0 {
            let size = MemoryLayout<iommu_viommu_selftest>.size
            guard cmd.data_len >= 8, Int(cmd.data_len) <= size else { throw .invalidArgument }
            // The data usually sits on the caller's stack, outside the modelled mmaps: only NULL faults.
            guard let user = unsafe UnsafeMutableRawPointer(bitPattern: UInt(cmd.data_uptr)) else { throw .badAddress }
            var data = iommu_viommu_selftest()
            unsafe withUnsafeMutableBytes(of: &data) { unsafe $0.copyMemory(from: UnsafeRawBufferPointer(start: user, count: Int(cmd.data_len))) }
            let length = 2 * UInt64(pageSize)
            let offset = contexts[contextID]!.allocateMMapRegion(length: length, pageSize: UInt64(pageSize))
            viommu.mmapOffset = offset
            data.out_data = data.in_data
            data.out_mmap_offset = offset
            data.out_mmap_length = length
            unsafe withUnsafeBytes(of: data) { unsafe user.copyMemory(from: $0.baseAddress!, byteCount: Int(cmd.data_len)) }
        }
        cmd.out_viommu_id = contexts[contextID]!.insert(.viommu(viommu))
        unsafe command.respond(cmd)
    }

    /// `mock_viommu_cache_invalidate` (selftest.c:633-701): no entries with its own type is
    /// the probe (0); another type is EINVAL, also with no entries. The whole array is
    /// copied first: an entry shorter than the struct is zero-filled, a longer one must
    /// have zeros past it (E2BIG). Then entry by entry: unknown flags EOPNOTSUPP, a cache
    /// id past 3 EINVAL, a virtual id with no vDEVICE on the vIOMMU EINVAL
    /// (`iommufd_viommu_find_dev`); a good entry clears one cache of the vDEVICE's device, or
    /// all four with `IOMMU_TEST_INVALIDATE_FLAG_ALL`. `handled` counts the entries before a
    /// bad one, whose clears stay.
    mutating func invalidateSelftestVIOMMU(_ contextID: Int, _ cmd: iommu_hwpt_invalidate, entries: UInt32, handled: inout UInt32) throws(Errno) {
        if entries == 0 && cmd.data_type == IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST { return }
        guard cmd.data_type == IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST else { throw .invalidArgument }
        let size = MemoryLayout<iommu_viommu_invalidate_selftest>.size
        var parsed: [iommu_viommu_invalidate_selftest] = []
        for index in 0..<UInt64(entries) {
            guard let source = unsafe UnsafeRawPointer(bitPattern: UInt(cmd.data_uptr + index * UInt64(cmd.entry_len))) else { throw .badAddress }
            var entry = iommu_viommu_invalidate_selftest()
            let copied = min(Int(cmd.entry_len), size)
            unsafe withUnsafeMutableBytes(of: &entry) { unsafe $0.copyMemory(from: UnsafeRawBufferPointer(start: source, count: copied)) }
            if Int(cmd.entry_len) > size {
                for offset in size..<Int(cmd.entry_len) where unsafe source.load(fromByteOffset: offset, as: UInt8.self) != 0 {
                    throw .argListTooLong  // E2BIG (copy_struct_from_user)
                }
            }
            parsed.append(entry)
        }
        for entry in parsed {
            guard entry.flags & ~IOMMU_TEST_INVALIDATE_FLAG_ALL == 0 else { throw .notSupported }
            guard entry.cache_id <= MOCK_DEV_CACHE_ID_MAX else { throw .invalidArgument }
            let vdevice = contexts[contextID]!.objects.values.lazy.compactMap { object -> MockVDevice? in
                if case .vdevice(let vdevice) = object, vdevice.viommuID == cmd.hwpt_id, vdevice.virtID == UInt64(entry.vdev_id) { return vdevice }
                return nil
            }.first
            guard let vdevice, case .device(var device)? = contexts[contextID]!.objects[vdevice.deviceID] else { throw .invalidArgument }
            if entry.flags & IOMMU_TEST_INVALIDATE_FLAG_ALL != 0 {
                device.caches = device.caches.map { _ in 0 }
            } else {
                device.caches[Int(entry.cache_id)] = 0
            }
            contexts[contextID]!.objects[vdevice.deviceID] = .device(device)
            handled += 1
        }
    }

    /// The bound on the entries of one `IOMMU_HWPT_INVALIDATE` (hw_pagetable.c:506).
    static let invalidateEntryLimit: UInt32 = 1 << 19

    /// `IOMMU_HWPT_INVALIDATE`, in the order of `iommufd_hwpt_invalidate` (hw_pagetable.c:
    /// 508-576): `__reserved` (EOPNOTSUPP); with entries, a data pointer, an entry length of
    /// 1 to PAGE_SIZE and at most 2^19 entries (EINVAL); the object (ENOENT); only a nested
    /// HWPT or a vIOMMU has a cache to invalidate, anything else (a paging
    /// HWPT, an IOAS, a device) is EINVAL, also with no entries. The driver is called even
    /// with no entries. The handled count goes back in `entry_num` on every path: 0 for the
    /// core's refusals, the driver's count otherwise.
    mutating func hardwarePageTableInvalidate(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        var cmd = unsafe command.load(iommu_hwpt_invalidate.self)
        let entries = cmd.entry_num
        cmd.entry_num = 0
        unsafe command.respond(cmd)
        guard cmd.__reserved == 0 else { throw .notSupported }
        if entries != 0 && (cmd.data_uptr == 0 || cmd.entry_len == 0 || cmd.entry_len > UInt32(pageSize) || entries > Self.invalidateEntryLimit) {
            throw .invalidArgument
        }
        guard let object = contexts[contextID]!.objects[cmd.hwpt_id] else { throw .noSuchFileOrDirectory }
        if case .viommu = object {
            // The entries before a bad one stay handled, as for a nested HWPT below.
            var handled: UInt32 = 0
            do {
                try invalidateSelftestVIOMMU(contextID, cmd, entries: entries, handled: &handled)
            } catch {
                errorAfterCommit = error
            }
            cmd.entry_num = handled
            unsafe command.respond(cmd)
            return
        }
        guard case .hwptNested(var nested) = object else { throw .invalidArgument }
        // The entries before a bad one stay handled: the driver's error comes after they commit.
        var handled: UInt32 = 0
        do {
            try invalidateSelftestIOTLB(&nested, cmd, entries: entries, handled: &handled)
        } catch {
            errorAfterCommit = error
        }
        cmd.entry_num = handled
        unsafe command.respond(cmd)
        contexts[contextID]!.objects[cmd.hwpt_id] = .hwptNested(nested)
    }

    /// `mock_domain_cache_invalidate_user` (selftest.c:873-919): its own data type only
    /// (EINVAL, also with no entries); then entry by entry: the copy (an entry length other
    /// than 8 is EINVAL), unknown flags (EOPNOTSUPP), an IOTLB id past 3 (EINVAL); an entry
    /// clears one IOTLB entry, or all with `IOMMU_TEST_INVALIDATE_FLAG_ALL`. It stops at the
    /// first bad entry; `handled` counts the ones before it.
    func invalidateSelftestIOTLB(_ nested: inout MockNestedHWPT, _ cmd: iommu_hwpt_invalidate, entries: UInt32, handled: inout UInt32) throws(Errno) {
        guard cmd.data_type == IOMMU_HWPT_INVALIDATE_DATA_SELFTEST else { throw .invalidArgument }
        let size = MemoryLayout<iommu_hwpt_invalidate_selftest>.size
        for index in 0..<UInt64(entries) {
            guard Int(cmd.entry_len) == size else { throw .invalidArgument }
            guard let source = unsafe UnsafeRawPointer(bitPattern: UInt(cmd.data_uptr + index * UInt64(cmd.entry_len))) else { throw .badAddress }
            let entry = unsafe source.loadUnaligned(as: iommu_hwpt_invalidate_selftest.self)
            guard entry.flags & ~IOMMU_TEST_INVALIDATE_FLAG_ALL == 0 else { throw .notSupported }
            guard entry.iotlb_id <= MOCK_NESTED_DOMAIN_IOTLB_ID_MAX else { throw .invalidArgument }
            if entry.flags & IOMMU_TEST_INVALIDATE_FLAG_ALL != 0 {
                nested.iotlb = Array(repeating: 0, count: nested.iotlb.count)
            } else {
                nested.iotlb[Int(entry.iotlb_id)] = 0
            }
            handled += 1
        }
    }

    /// `IOMMU_GET_HW_INFO`, in the order of `iommufd_get_hw_info` (device.c:1629-1745): flags
    /// and `__reserved` (EOPNOTSUPP), the device (ENOENT), the driver's `hw_info` with the
    /// requested type (EOPNOTSUPP for a type it does not serve), the copy to the user's
    /// buffer with the rest of a larger buffer zeroed, `data_len` rewritten to the driver's
    /// length, then the capabilities. Two drivers are modelled: the selftest mock IOMMU
    /// (`mock_domain_hw_info`, selftest.c:304-321: type 0xfeedbeef, `test_reg` 0xdeadbeef;
    /// dirty tracking capable, no ATS) and QEMU's intel-iommu for a VFIO-bound function
    /// (`intel_iommu_hw_info`, intel/iommu.c:3709-3730: the errata flag, QEMU 7.2's CAP and
    /// ECAP; no second-stage dirty tracking without scalable mode, no ATS on the emulated
    /// devices, no PASID).
    mutating func getHardwareInfo(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        var cmd = unsafe command.load(iommu_hw_info.self)
        guard cmd.flags & ~IOMMU_HW_INFO_FLAG_INPUT_TYPE == 0 else { throw .notSupported }
        guard cmd.__reserved == (0, 0, 0) else { throw .notSupported }
        if cmd.flags & IOMMU_HW_INFO_FLAG_INPUT_TYPE == 0 { cmd.in_data_type = IOMMU_HW_INFO_TYPE_DEFAULT }
        guard case .device(let device)? = contexts[contextID]!.objects[cmd.dev_id] else { throw .noSuchFileOrDirectory }
        // No IOMMU, no hardware info (device.c:1654-1657).
        if device.iommu == .none { throw .notSupported }
        var data: [UInt8]
        let dataType: UInt32
        // `ops->capable(dev, IOMMU_CAP_DIRTY_TRACKING)`: the same answer HWPT_ALLOC checks.
        let capabilities = IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED | (device.tracksDirty ? IOMMU_HW_CAP_DIRTY_TRACKING : 0)
        if case .intel = device.iommu {
            guard cmd.in_data_type == IOMMU_HW_INFO_TYPE_DEFAULT || cmd.in_data_type == IOMMU_HW_INFO_TYPE_INTEL_VTD else { throw .notSupported }
            var vtd = iommu_hw_info_vtd()
            vtd.flags = IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17
            vtd.cap_reg = Self.qemuVTdCapability
            vtd.ecap_reg = Self.qemuVTdExtendedCapability | (device.iommu.tracksDirty ? Self.vtdDirtyTrackingBits : 0)
            data = unsafe withUnsafeBytes(of: vtd) { unsafe Array($0) }
            dataType = IOMMU_HW_INFO_TYPE_INTEL_VTD
        } else {
            guard cmd.in_data_type == IOMMU_HW_INFO_TYPE_DEFAULT || cmd.in_data_type == Self.selftestHardwareInfoType else { throw .notSupported }
            // struct iommu_test_hw_info { __u32 flags; __u32 test_reg; } (iommufd_test.h:208-211)
            data = unsafe withUnsafeBytes(of: (UInt32(0), Self.selftestHardwareInfoRegister)) { unsafe Array($0) }
            dataType = Self.selftestHardwareInfoType
        }
        let copied = min(Int(cmd.data_len), data.count)
        if cmd.data_len > 0 {
            // The buffer is usually on the caller's stack, outside the modelled mmaps: only NULL faults.
            guard let destination = unsafe UnsafeMutableRawPointer(bitPattern: UInt(cmd.data_uptr)) else { throw .badAddress }
            unsafe data.withUnsafeBytes { unsafe destination.copyMemory(from: $0.baseAddress!, byteCount: copied) }
            if Int(cmd.data_len) > copied {
                unsafe (destination + copied).initializeMemory(as: UInt8.self, repeating: 0, count: Int(cmd.data_len) - copied)
            }
        }
        cmd.data_len = UInt32(data.count)
        cmd.out_data_type = dataType
        cmd.out_capabilities = capabilities
        cmd.out_max_pasid_log2 = device.maxPASIDLog2
        unsafe command.respond(cmd)
    }

    /// `IOMMU_HW_INFO_TYPE_SELFTEST` and `IOMMU_HW_INFO_SELFTEST_REGVAL` (iommufd_test.h:205-206).
    static let selftestHardwareInfoType: UInt32 = 0xfeed_beef
    static let selftestHardwareInfoRegister: UInt32 = 0xdead_beef
    /// QEMU 7.2's intel-iommu registers as the VM lane's guest reads them (`/sys/class/iommu/dmar0/intel-iommu/cap`, `ecap`).
    static let qemuVTdCapability: UInt64 = 0xd2_008c_2226_0206
    static let qemuVTdExtendedCapability: UInt64 = 0xf0_0f4a
    /// ECAP bits of a VT-d unit with second-stage dirty tracking, for a function configured
    /// with `iommuTracksDirty`: SMTS (43), SLADS (45), SLTS (46) and SMPWC (48).
    static let vtdDirtyTrackingBits: UInt64 = 1 << 43 | 1 << 45 | 1 << 46 | 1 << 48
}
