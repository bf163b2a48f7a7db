import CIOMMUFD
import IOMMUFDSystem
import SystemPackage

extension KernelState {
    // MARK: Pinning and accounting

    /// Brings the pinned pages of a context in line with its areas and domains: a page is
    /// pinned while an area in an IOAS with at least one domain covers it. Newly pinned
    /// pages are filled area by area in IOVA order, as `iopt_fill_domain` walks them: each
    /// area's pages must be backed (`EFAULT`, or `EINVAL` for file pages the kernel cannot
    /// pin) and then fit the memlock limit (`ENOMEM`, `incr_user_locked_vm`), so the first
    /// area that fails decides the error.
    mutating func repin(_ contextID: Int) throws(Errno) {
        guard let context = contexts[contextID] else { return }
        var wanted: [Int: IntervalSet] = [:]
        var filled: [MappedArea] = []
        for object in context.objects.values {
            guard case .ioas(let table) = object, !table.domains.isEmpty else { continue }
            for area in table.areas(overlapping: 0...ulongMax) {
                // A dma-buf's pages are MMIO: never pinned, never charged (pages.c:1561-1562).
                if case .dmaBuf? = context.pages[area.pagesID]?.source { continue }
                wanted[area.pagesID, default: IntervalSet()].insert(area.firstPageIndex...area.lastPageIndex)
                filled.append(area)
            }
        }
        var removed: UInt64 = 0
        var remaining: [Int: IntervalSet] = [:]
        for pagesID in Set(wanted.keys).union(context.pinned.keys) {
            let now = context.pinned[pagesID] ?? IntervalSet()
            let next = wanted[pagesID] ?? IntervalSet()
            remaining[pagesID] = next.subtracting(now)
            removed += now.subtracting(next).count
        }
        // iopt_pages_update_pinned (pages.c:1011-1037): CAP_IPC_LOCK charges nothing; else the
        // context's mode picks the budget; mm->pinned_vm counts every pin.
        let charging = !configuration.hasIPCLock
        let perProcess = context.accountingMode == 1
        let budget = perProcess ? mmLockedPages : userLockedPages
        let limitPages = configuration.memlockLimit.map { $0 / pageSize } ?? .max
        var added: UInt64 = 0
        for area in filled.sorted(by: { $0.start < $1.start }) {
            guard let todo = remaining[area.pagesID], !todo.isEmpty, let pages = context.pages[area.pagesID] else { continue }
            var span = IntervalSet()
            span.insert(area.firstPageIndex...area.lastPageIndex)
            let piece = todo.subtracting(todo.subtracting(span))
            guard !piece.isEmpty else { continue }
            for range in piece.intervals {
                switch pages.source {
                case .user(let base):
                    let start = base + range.lowerBound * pageSize
                    let length = (range.upperBound - range.lowerBound + 1) * pageSize
                    guard memoryIsMapped(start: start, length: length, writable: pages.writable) else { throw .badAddress }
                case .file(let fileID, let start):
                    let size = memoryFiles[fileID]?.size ?? 0
                    // pin_memfd_pages (iommufd/pages.c:823-842) asks memfd_pin_folios for whole
                    // pages, which refuses any that reach i_size (mm/gup.c:3457-3458): a
                    // partial last page cannot be pinned.
                    guard start + (range.upperBound + 1) * pageSize <= size else { throw .invalidArgument }
                case .unpinnableFile:
                    throw .invalidArgument
                case .dmaBuf:
                    break  // never pinned (filtered out above)
                }
            }
            added += piece.count
            remaining[area.pagesID] = todo.subtracting(piece)
            if charging && added > removed && budget + (added - removed) > limitPages { throw .noMemory }
        }
        func apply(_ counter: inout UInt64) {
            if added > removed { counter += added - removed } else { counter -= min(counter, removed - added) }
        }
        if charging {
            if perProcess { apply(&mmLockedPages) } else { apply(&userLockedPages) }
        }
        apply(&pinnedVMPages)
        contexts[contextID]!.pinned = wanted.filter { !$0.value.isEmpty }
    }

    // MARK: Domains

    /// `iopt_table_add_domain`: a stricter alignment must suit existing areas, the
    /// aperture's outside is reserved, then every area is pinned and loaded.
    mutating func addDomain(_ contextID: Int, ioasID: UInt32, hwptID: UInt32, ioPageSize: UInt64, aperture: ClosedRange<UInt64>) throws(Errno) {
        var table = contexts[contextID]!.ioas(ioasID)!
        let alignment = max(ioPageSize, table.iovaAlignment)
        if alignment > pageSize { throw .invalidArgument }
        if alignment != table.iovaAlignment && !table.areasConform(to: alignment) { throw .addressInUse }
        if aperture.lowerBound != 0, let error = table.reserve(0...(aperture.lowerBound - 1), owner: .domain(hwptID: hwptID)) { throw error }
        if aperture.upperBound != ulongMax, let error = table.reserve((aperture.upperBound + 1)...ulongMax, owner: .domain(hwptID: hwptID)) { throw error }
        table.domains.append((hwptID: hwptID, ioPageSize: ioPageSize))
        contexts[contextID]!.objects[ioasID] = .ioas(table)
        try repin(contextID)
    }

    mutating func removeDomain(_ contextID: Int, ioasID: UInt32, hwptID: UInt32) {
        guard var table = contexts[contextID]!.ioas(ioasID) else { return }
        table.reserved.removeAll { $0.owner == .domain(hwptID: hwptID) }
        table.domains.removeAll { $0.hwptID == hwptID }
        contexts[contextID]!.objects[ioasID] = .ioas(table)
        try? repin(contextID)
    }

    // MARK: Devices

    /// `iommufd_device_attach`: to a HWPT, or to an IOAS through an automatic domain
    /// (an existing automatic HWPT of that IOAS is shared). Returns the HWPT id.
    mutating func attachDevice(_ contextID: Int, _ deviceID: UInt32, to ptID: UInt32, iommu: DeviceIOMMU) throws(Errno) -> UInt32 {
        let hwptID: UInt32
        switch contexts[contextID]!.objects[ptID] {
        case nil:
            throw .noSuchFileOrDirectory
        case .ioas?:
            // iommufd_device_auto_get_domain: an automatic domain of the IOAS is reused only
            // when the device can attach to it (the same IOMMU driver and geometry; another
            // driver's domain refuses the attach with EINVAL and the next is tried); else a
            // new one is made.
            let existing = contexts[contextID]!.objects.filter { _, object in
                if case .hwptPaging(let hwpt) = object {
                    return hwpt.ioasID == ptID && hwpt.autoDomain && hwpt.driver == iommu.driver
                        && hwpt.ioPageSize == iommu.ioPageSize && hwpt.aperture == iommu.aperture
                }
                return false
            }.keys.min()
            if let existing {
                hwptID = existing
            } else {
                let hwpt = MockHWPT(ioasID: ptID, autoDomain: true, driver: iommu.driver, ioPageSize: iommu.ioPageSize, aperture: iommu.aperture)
                hwptID = contexts[contextID]!.insert(.hwptPaging(hwpt))
                try addDomain(contextID, ioasID: ptID, hwptID: hwptID, ioPageSize: hwpt.ioPageSize, aperture: hwpt.aperture)
            }
        case .hwptPaging(let hwpt)?:
            // A domain of another IOMMU driver cannot take the device.
            guard hwpt.driver == iommu.driver else { throw .invalidArgument }
            // intel-iommu turns IOPF on for a domain with a fault queue and needs PRI for
            // it (intel/iommu.c:3176-3178, 3492-3499); QEMU 7.2's functions have none.
            if hwpt.faultID != nil && iommu.driver == .intel,
               case .device(let device)? = contexts[contextID]!.objects[deviceID], !device.supportsPageRequests {
                throw .operationNotSupportedByDevice
            }
            // mock_domain_nop_attach (selftest.c:222-223): a NO_DIRTY device refuses a domain with dirty operations.
            if hwpt.tracksDirty, case .device(let device)? = contexts[contextID]!.objects[deviceID], !device.tracksDirty { throw .invalidArgument }
            hwptID = ptID
        case .hwptNested(let nested)?:
            guard nested.driver == iommu.driver else { throw .invalidArgument }
            // mock_domain_nop_attach (selftest.c:226-240): a nested HWPT of a vIOMMU needs the
            // device's vDEVICE there (iommufd_viommu_get_vdev_id, ENOENT); the driver caches
            // the vIOMMU and virtual id when the vIOMMU changes.
            if let viommuID = nested.viommuID {
                guard let vdevice = vdevice(of: deviceID, on: viommuID, contextID) else { throw .noSuchFileOrDirectory }
                if case .device(var device)? = contexts[contextID]!.objects[deviceID], device.eventVIOMMU != viommuID {
                    device.eventVIOMMU = viommuID
                    device.eventVirtID = vdevice.virtID
                    contexts[contextID]!.objects[deviceID] = .device(device)
                }
            }
            hwptID = ptID
        default:
            throw .invalidArgument
        }
        contexts[contextID]!.adjustAttachments(ofHWPT: hwptID, by: 1)
        guard case .device(var device)? = contexts[contextID]!.objects[deviceID] else { throw .noSuchFileOrDirectory }
        device.attachedHWPT = hwptID
        if contexts[contextID]!.hwptNested(hwptID)?.viommuID == nil {
            device.eventVIOMMU = nil
            device.eventVirtID = 0
        }
        contexts[contextID]!.objects[deviceID] = .device(device)
        return hwptID
    }

    /// Detaches a device (its reserved regions leave the IOAS: iommufd_hw_pagetable_detach,
    /// device.c:786-787); an automatic HWPT left without devices is destroyed.
    mutating func detachDevice(_ contextID: Int, _ deviceID: UInt32) {
        guard case .device(var device)? = contexts[contextID]!.objects[deviceID], let hwptID = device.attachedHWPT else { return }
        answerPendingFaults(contextID, hwptID: hwptID, deviceID: deviceID, pasid: 0)
        device.attachedHWPT = nil
        contexts[contextID]!.objects[deviceID] = .device(device)
        if let ioasID = contexts[contextID]!.ioasID(ofHWPT: hwptID) { removeRegions(ofDevice: deviceID, contextID, in: ioasID) }
        releaseAttachment(contextID, hwptID: hwptID)
    }

    /// `iopt_remove_reserved_iova` with the device as owner.
    mutating func removeRegions(ofDevice deviceID: UInt32, _ contextID: Int, in ioasID: UInt32) {
        guard var table = contexts[contextID]!.ioas(ioasID) else { return }
        table.reserved.removeAll { $0.owner == .device(deviceID: deviceID) }
        contexts[contextID]!.objects[ioasID] = .ioas(table)
    }

    /// One device fewer on `hwptID`; an automatic HWPT left without devices is destroyed.
    mutating func releaseAttachment(_ contextID: Int, hwptID: UInt32) {
        contexts[contextID]!.adjustAttachments(ofHWPT: hwptID, by: -1)
        guard let hwpt = contexts[contextID]!.hwptPaging(hwptID), hwpt.attachedDevices == 0, hwpt.autoDomain else { return }
        contexts[contextID]!.objects[hwptID] = nil
        removeDomain(contextID, ioasID: hwpt.ioasID, hwptID: hwptID)
    }

    // MARK: IOMMU_TEST_CMD

    /// The parts of the kernel selftest command the model implements.
    /// The last `IOMMU_TEST_OP_*` of 7.3 (`IOMMU_TEST_OP_DMABUF_REVOKE`, iommufd_test.h:33).
    static let lastSelftestOperation: UInt32 = 23

    mutating func selftest(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        var cmd = unsafe command.load(iommu_test_cmd.self)
        switch cmd.op {
        case IOMMU_TEST_OP_ADD_RESERVED:
            // iommufd_test_add_reserved (selftest.c:1163-1184): the range first, then the IOAS.
            let length = cmd.add_reserved.length
            guard length != 0 else { throw .invalidArgument }
            let (last, overflow) = cmd.add_reserved.start.addingReportingOverflow(length - 1)
            guard !overflow else { throw .overflow }
            guard var table = contexts[contextID]!.ioas(cmd.id) else { throw .noSuchFileOrDirectory }
            if let error = table.reserve(cmd.add_reserved.start...last, owner: .selftest) { throw error }
            contexts[contextID]!.objects[cmd.id] = .ioas(table)
        case IOMMU_TEST_OP_MOCK_DOMAIN, IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS:
            // mock_dev_create (selftest.c:983-995): only NO_DIRTY and PASID are device flags.
            var flags: UInt32 = 0
            if cmd.op == IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS {
                flags = cmd.mock_domain_flags.dev_flags
                guard flags & ~(MOCK_FLAGS_DEVICE_NO_DIRTY | MOCK_FLAGS_DEVICE_PASID) == 0 else { throw .invalidArgument }
            }
            // Ids in the kernel's order: the selftest object, the bound device, then the HWPT.
            let selftestID = contexts[contextID]!.insert(.selftest(deviceID: 0))
            let deviceID = contexts[contextID]!.insert(.device(MockBoundDevice(selftestFlags: flags)))
            contexts[contextID]!.objects[selftestID] = .selftest(deviceID: deviceID)
            let hwptID = try attachDevice(contextID, deviceID, to: cmd.id, iommu: .selftest)
            cmd.mock_domain.out_stdev_id = selftestID
            cmd.mock_domain.out_hwpt_id = hwptID
            cmd.mock_domain.out_idev_id = deviceID
            unsafe command.respond(cmd)
        case IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE:
            guard case .selftest(let deviceID)? = contexts[contextID]!.objects[cmd.id] else { throw .noSuchFileOrDirectory }
            cmd.mock_domain_replace.pt_id = try replaceSelftestRID(contextID, deviceID, with: cmd.mock_domain_replace.pt_id)
            unsafe command.respond(cmd)
        case IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT:
            // selftest.c:2151-2157: at least one batch element (an unsigned long and a u32);
            // past that the kernel changes only its internal pinning batch size.
            guard cmd.memory_limit.limit >= 12 else { throw .invalidArgument }
        case IOMMU_TEST_OP_MD_CHECK_MAP:
            // iommufd_test_md_check_pa (selftest.c:1187-1240): IOVA, length and user address
            // in mock I/O pages (2 KiB), no wrap; length 0 checks nothing; each page's user
            // address must be mapped (EFAULT) and translate to the same memory (EINVAL).
            guard case .hwptPaging(let hwpt)? = contexts[contextID]!.objects[cmd.id],
                  let table = contexts[contextID]!.ioas(hwpt.ioasID) else { throw .noSuchFileOrDirectory }
            let check = cmd.check_map
            let ioPage = IOMMU_TEST_MOCK_PAGE_SIZE
            guard check.iova % ioPage == 0, check.length % ioPage == 0, check.uptr % ioPage == 0,
                  !check.uptr.addingReportingOverflow(check.length).overflow else { throw .invalidArgument }
            var offset: UInt64 = 0
            while offset < check.length {
                guard memoryIsMapped(start: (check.uptr + offset) & ~(pageSize - 1), length: pageSize, writable: false) else { throw .badAddress }
                // The kernel compares physical pages, so two mappings of one memfd are the same page.
                guard let address = unsafe translate(contextID: contextID, table: table, iova: check.iova + offset, length: 1, write: false),
                      page(at: UInt64(UInt(bitPattern: address))) == page(at: check.uptr + offset) else { throw .invalidArgument }
                offset += ioPage
            }
        case IOMMU_TEST_OP_DIRTY:
            // iommufd_test_dirty (selftest.c): the arguments (EINVAL, EOVERFLOW past 2^27
            // pages), a paging HWPT of the mock IOMMU (ENOENT, EINVAL), tracking on (EINVAL);
            // each bit set in the user's bitmap marks the I/O page at that IOVA dirty if it
            // is mapped, and counts.
            let dirty = cmd.dirty
            guard dirty.page_size != 0, dirty.length != 0, dirty.iova % dirty.page_size == 0,
                  dirty.length % dirty.page_size == 0, dirty.uptr != 0 else { throw .invalidArgument }
            let pages = dirty.length / dirty.page_size
            guard pages <= (16 << 20) * 8 else { throw .overflow }
            guard var hwpt = contexts[contextID]!.hwptPaging(cmd.id) else { throw .noSuchFileOrDirectory }
            guard hwpt.isSelftestDomain, hwpt.dirtyTracking else { throw .invalidArgument }
            let table = contexts[contextID]!.ioas(hwpt.ioasID)!
            var count: UInt64 = 0
            for index in 0..<pages {
                let byte = unsafe UnsafeRawPointer(bitPattern: UInt(dirty.uptr + index / 8))!.load(as: UInt8.self)
                guard byte >> (index % 8) & 1 != 0 else { continue }
                count += 1
                let iova = dirty.iova + index * dirty.page_size
                if !table.areas(overlapping: iova...iova).isEmpty { hwpt.dirtyPages.insert(iova & ~(hwpt.ioPageSize - 1)) }
            }
            contexts[contextID]!.objects[cmd.id] = .hwptPaging(hwpt)
            cmd.dirty.out_nr_dirty = count
            unsafe command.respond(cmd)
        case IOMMU_TEST_OP_MD_CHECK_IOTLB:
            // iommufd_test_md_check_iotlb (selftest.c:1279-1296): a nested HWPT of the mock
            // driver (ENOENT for any other object), then the entry (EINVAL past 3 or when it
            // holds another value).
            guard let nested = contexts[contextID]!.hwptNested(cmd.id) else { throw .noSuchFileOrDirectory }
            guard nested.driver == .selftest else { throw .invalidArgument }
            guard cmd.check_iotlb.id <= MOCK_NESTED_DOMAIN_IOTLB_ID_MAX, nested.iotlb[Int(cmd.check_iotlb.id)] == cmd.check_iotlb.iotlb else {
                throw .invalidArgument
            }
        case IOMMU_TEST_OP_TRIGGER_IOPF:
            try triggerIOPF(contextID, cmd)
        case IOMMU_TEST_OP_TRIGGER_VEVENT:
            try triggerVEvent(contextID, deviceID: cmd.trigger_vevent.dev_id)
        case IOMMU_TEST_OP_DEV_CHECK_CACHE:
            try checkDeviceCache(contextID, deviceID: cmd.id, cacheID: cmd.check_dev_cache.id, value: cmd.check_dev_cache.cache)
        case IOMMU_TEST_OP_PASID_ATTACH, IOMMU_TEST_OP_PASID_REPLACE, IOMMU_TEST_OP_PASID_DETACH, IOMMU_TEST_OP_PASID_CHECK_HWPT:
            try selftestPASID(contextID, &cmd)
            unsafe command.respond(cmd)
        case 1...Self.lastSelftestOperation:
            // Implemented by the kernel (iommufd_test, selftest.c:2096-2186), not by the model:
            // the pin-count oracle, accesses, dirty tracking, faults, PASIDs, dma-bufs.
            unmodelledCalls.append(.testCommand)
            throw .noFunction
        default:
            throw .notSupported
        }
    }

    // MARK: Fake DMA

    /// What stands for a physical page in the model: a memfd's page is the file and its
    /// offset, whichever mapping (or the model's own view) reaches it; any other memory is
    /// its address.
    enum PhysicalPage: Equatable {
        case memoryFile(id: Int, offset: UInt64)
        case memory(UInt64)
    }

    /// The page behind a host address of the process's memory (or of a memfd's own view).
    func page(at address: UInt64) -> PhysicalPage {
        if let area = areasOfMemory.first(where: { $0.start <= address && address <= $0.last }),
           case .memoryFile(let id, let offset) = area.backing {
            return .memoryFile(id: id, offset: offset + (address - area.start))
        }
        for (id, file) in memoryFiles where file.storage != 0 && UInt64(file.storage) <= address && address - UInt64(file.storage) < file.capacity {
            return .memoryFile(id: id, offset: address - UInt64(file.storage))
        }
        return .memory(address)
    }

    /// The user memory behind `[iova, iova + length)` of an IOAS that has a domain,
    /// or `nil` when it is not mapped as one contiguous area with that access.
    func translate(contextID: Int, table: IOPageTable, iova: UInt64, length: UInt64, write: Bool) -> UnsafeMutableRawPointer? {
        guard !table.domains.isEmpty, length > 0 else { return nil }
        let (last, overflow) = iova.addingReportingOverflow(length - 1)
        guard !overflow,
              let area = table.areas(overlapping: iova...iova).first,
              area.last >= last,
              write ? area.writeable : area.readable,
              let pages = contexts[contextID]?.pages[area.pagesID] else { return nil }
        let offset = area.startByte + (iova - area.start)
        switch pages.source {
        case .user(let base):
            return unsafe UnsafeMutableRawPointer(bitPattern: UInt(base + offset))
        case .file(let fileID, let start):
            guard let file = memoryFiles[fileID], file.storage != 0 else { return nil }
            return unsafe UnsafeMutableRawPointer(bitPattern: file.storage + UInt(start + offset))
        case .unpinnableFile:
            return nil  // never pinned, so never in a domain
        case .dmaBuf(let id, let start):
            // Revoked pages leave the domains for good (pages.c:1439-1456).
            guard !pages.revoked, let address = dmaBufAddress(id, offset: start + offset) else { return nil }
            return unsafe UnsafeMutableRawPointer(bitPattern: address)
        }
    }
}
