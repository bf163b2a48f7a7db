import IOMMUFDSystem
import CIOMMUFD
import SystemPackage

// IOAS address space and mappings (drivers/iommu/iommufd/ioas.c, io_pagetable.c): IOVA ranges,
// allowed IOVAs, map, map-file, copy and unmap.
extension KernelState {
    // MARK: IOVA space

    mutating func ioasIOVARanges(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        var cmd = unsafe command.load(iommu_ioas_iova_ranges.self)
        guard cmd.__reserved == 0 else { throw .notSupported }
        guard let table = contexts[contextID]!.ioas(cmd.ioas_id) else { throw .noSuchFileOrDirectory }
        let capacity = cmd.num_iovas
        let ranges = table.usableRanges
        cmd.out_iova_alignment = table.iovaAlignment
        for (index, range) in ranges.enumerated() where index < capacity {
            guard let array = unsafe UnsafeMutableRawPointer(bitPattern: UInt(cmd.allowed_iovas)) else { throw .badAddress }
            unsafe array.storeBytes(of: iommu_iova_range(start: range.lowerBound, last: range.upperBound),
                             toByteOffset: index * MemoryLayout<iommu_iova_range>.stride, as: iommu_iova_range.self)
        }
        cmd.num_iovas = UInt32(ranges.count)
        unsafe command.respond(cmd)
        if cmd.num_iovas > capacity { errorAfterCommit = .messageTooLong }
    }

    mutating func ioasAllowIOVAs(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        let cmd = unsafe command.load(iommu_ioas_allow_iovas.self)
        guard cmd.__reserved == 0 else { throw .notSupported }
        guard var table = contexts[contextID]!.ioas(cmd.ioas_id) else { throw .noSuchFileOrDirectory }
        var ranges: [ClosedRange<UInt64>] = []
        for index in 0..<Int(cmd.num_iovas) {
            guard let array = unsafe UnsafeRawPointer(bitPattern: UInt(cmd.allowed_iovas)) else { throw .badAddress }
            let range = unsafe array.load(fromByteOffset: index * MemoryLayout<iommu_iova_range>.stride, as: iommu_iova_range.self)
            guard range.start < range.last else { throw .invalidArgument }
            guard !ranges.contains(where: { $0.overlaps(range.start...range.last) }) else { throw .invalidArgument }
            ranges.append(range.start...range.last)
        }
        if ranges.contains(where: { table.reservedSet.intersects($0) }) { throw .addressInUse }
        table.allowed = ranges
        contexts[contextID]!.objects[cmd.ioas_id] = .ioas(table)
    }

    // MARK: Map, copy, unmap

    private static let mapFlags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE

    /// The checks IOAS_MAP, IOAS_MAP_FILE and IOAS_COPY make first, in the kernel's order:
    /// unknown flags or reserved bits, then any value at or past ULONG_MAX, then no access.
    func checkMapArguments(flags: UInt32, reserved: UInt32 = 0, values: UInt64...) throws(Errno) {
        guard flags & ~Self.mapFlags == 0, reserved == 0 else { throw .notSupported }
        guard values.allSatisfy({ $0 < ulongMax }) else { throw .overflow }
        guard flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE) != 0 else { throw .invalidArgument }
    }

    mutating func ioasMap(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        var cmd = unsafe command.load(iommu_ioas_map.self)
        try checkMapArguments(flags: cmd.flags, reserved: cmd.__reserved, values: cmd.iova, cmd.length)
        guard contexts[contextID]!.ioas(cmd.ioas_id) != nil else { throw .noSuchFileOrDirectory }
        // iopt_alloc_user_pages
        let (_, wraps) = cmd.user_va.addingReportingOverflow(cmd.length)
        guard !wraps else { throw .overflow }
        guard cmd.length != 0, cmd.length <= ulongMax - pageSize else { throw .invalidArgument }
        let base = cmd.user_va & ~(pageSize - 1)
        let startByte = cmd.user_va - base
        cmd.iova = try mapNewPages(contextID, source: .user(base: base), startByte: startByte, ioasID: cmd.ioas_id,
                                   length: cmd.length, iova: cmd.iova, flags: cmd.flags)
        unsafe command.respond(cmd)
    }

    mutating func ioasMapFile(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        var cmd = unsafe command.load(iommu_ioas_map_file.self)
        try checkMapArguments(flags: cmd.flags, values: cmd.iova, cmd.length)
        guard contexts[contextID]!.ioas(cmd.ioas_id) != nil else { throw .noSuchFileOrDirectory }
        guard cmd.length != 0 else { throw .invalidArgument }
        let (_, wraps) = cmd.start.addingReportingOverflow(cmd.length - 1)
        guard !wraps else { throw .overflow }
        // iopt_map_file_pages (io_pagetable.c:482-522): any open file is taken here; only a
        // memfd's pages can be pinned later (repin: EINVAL for the others).
        guard let descriptor = descriptors[cmd.fd] else { throw .badFileDescriptor }
        let startByte = cmd.start % pageSize
        let source: PagesObject.Source
        if case .memoryFile(let fileID) = descriptor {
            source = .file(memoryFileID: fileID, start: cmd.start - startByte)
            memoryFiles[fileID]?.references += 1
        } else if case .dmaBuf(let id) = descriptor {
            source = try dmaBufSource(id, start: cmd.start, length: cmd.length)
        } else {
            source = .unpinnableFile(start: cmd.start - startByte)
        }
        cmd.iova = try mapNewPages(contextID, source: source, startByte: startByte, ioasID: cmd.ioas_id,
                                   length: cmd.length, iova: cmd.iova, flags: cmd.flags)
        unsafe command.respond(cmd)
    }

    mutating func ioasCopy(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        var cmd = unsafe command.load(iommu_ioas_copy.self)
        try checkMapArguments(flags: cmd.flags, values: cmd.length, cmd.src_iova, cmd.dst_iova)
        guard let source = contexts[contextID]!.ioas(cmd.src_ioas_id) else { throw .noSuchFileOrDirectory }
        // iopt_get_pages: the source range must be covered by contiguous areas.
        guard cmd.length != 0 else { throw .invalidArgument }
        let (sourceLast, wraps) = cmd.src_iova.addingReportingOverflow(cmd.length - 1)
        guard !wraps else { throw .overflow }
        var pieces: [(Int, UInt64, UInt64)] = []
        var cursor = cmd.src_iova
        var covered = false
        for area in source.areas(overlapping: cmd.src_iova...sourceLast) {
            guard area.start <= cursor else { break }
            let last = min(sourceLast, area.last)
            pieces.append((area.pagesID, area.startByte + (cursor - area.start), last - cursor + 1))
            if last == sourceLast { covered = true; break }
            cursor = last + 1
        }
        guard covered else { throw .noSuchFileOrDirectory }
        guard contexts[contextID]!.ioas(cmd.dst_ioas_id) != nil else { throw .noSuchFileOrDirectory }
        cmd.dst_iova = try mapPages(contextID, ioasID: cmd.dst_ioas_id, pieces: pieces, length: cmd.length,
                                    fixedIOVA: fixed(cmd.flags) ? cmd.dst_iova : nil, flags: cmd.flags)
        unsafe command.respond(cmd)
    }

    func fixed(_ flags: UInt32) -> Bool { flags & IOMMU_IOAS_MAP_FIXED_IOVA != 0 }

    /// MAP and MAP_FILE after their own checks: new pages from `source` (`startByte` into its
    /// first page, `length` bytes, writable as `flags` say), placed as one area.
    mutating func mapNewPages(_ contextID: Int, source: PagesObject.Source, startByte: UInt64, ioasID: UInt32,
                              length: UInt64, iova: UInt64, flags: UInt32) throws(Errno) -> UInt64 {
        let pagesID = newPages(contextID, PagesObject(source: source, pageCount: (length + startByte + pageSize - 1) / pageSize,
                                                      writable: flags & IOMMU_IOAS_MAP_WRITEABLE != 0, ownerProcess: configuration.processID))
        return try mapPages(contextID, ioasID: ioasID, pieces: [(pagesID, startByte, length)], length: length,
                            fixedIOVA: fixed(flags) ? iova : nil, flags: flags)
    }

    mutating func newPages(_ contextID: Int, _ pages: PagesObject) -> Int {
        let id = contexts[contextID]!.nextPagesID
        contexts[contextID]!.nextPagesID += 1
        contexts[contextID]!.pages[id] = pages
        return id
    }

    /// `iopt_map_pages`: place the areas (kernel-chosen or fixed IOVA), then fill the domains.
    mutating func mapPages(
        _ contextID: Int, ioasID: UInt32, pieces: [(pagesID: Int, startByte: UInt64, length: UInt64)],
        length: UInt64, fixedIOVA: UInt64?, flags: UInt32
    ) throws(Errno) -> UInt64 {
        var table = contexts[contextID]!.ioas(ioasID)!
        let alignment = table.iovaAlignment
        guard length & (alignment - 1) == 0, length != 0 else { throw .invalidArgument }
        let iova: UInt64
        if let fixedIOVA {
            if let error = table.checkFixed(iova: fixedIOVA, length: length) { throw error }
            iova = fixedIOVA
        } else {
            let first = pieces[0]
            let pages = contexts[contextID]!.pages[first.pagesID]!
            let sourceStart: UInt64
            switch pages.source {
            case .user(let base): sourceStart = base &+ first.startByte
            case .file(_, let start), .unpinnableFile(let start), .dmaBuf(_, let start): sourceStart = start &+ first.startByte
            }
            switch table.allocate(length: length, address: sourceStart) {
            case .success(let chosen): iova = chosen
            case .failure(let error): throw error
            }
        }
        var cursor = iova
        for piece in pieces {
            // iopt_insert_area (io_pagetable.c:216-220): a writeable area needs pages that were
            // pinned writable (an IOAS_COPY from a read-only mapping into a WRITEABLE one is
            // EPERM), then the page offset must suit the IOVA alignment.
            if flags & IOMMU_IOAS_MAP_WRITEABLE != 0 && !contexts[contextID]!.pages[piece.pagesID]!.writable { throw .notPermitted }
            if (piece.startByte % pageSize) & (alignment - 1) != 0 { throw .invalidArgument }
            let (last, overflow) = cursor.addingReportingOverflow(piece.length - 1)
            if overflow { throw .overflow }
            table.insert(MappedArea(start: cursor, last: last, pagesID: piece.pagesID, startByte: piece.startByte,
                                    readable: flags & IOMMU_IOAS_MAP_READABLE != 0,
                                    writeable: flags & IOMMU_IOAS_MAP_WRITEABLE != 0))
            contexts[contextID]!.pages[piece.pagesID]!.areaReferences += 1
            cursor = last &+ 1
        }
        contexts[contextID]!.objects[ioasID] = .ioas(table)
        try repin(contextID)
        return iova
    }

    mutating func ioasUnmap(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        var cmd = unsafe command.load(iommu_ioas_unmap.self)
        guard contexts[contextID]!.ioas(cmd.ioas_id) != nil else { throw .noSuchFileOrDirectory }
        let range: ClosedRange<UInt64>
        let unmapAll = cmd.iova == 0 && cmd.length == .max
        if unmapAll {
            range = 0...ulongMax
        } else {
            guard cmd.iova < ulongMax, cmd.length < ulongMax else { throw .overflow }
            guard cmd.length != 0 else { throw .invalidArgument }
            let (last, overflow) = cmd.iova.addingReportingOverflow(cmd.length - 1)
            guard !overflow else { throw .overflow }
            range = cmd.iova...last
        }
        // iopt_unmap_iova_range: whole areas only, in address order; what was removed
        // before a cut-through area stays removed.
        var table = contexts[contextID]!.ioas(cmd.ioas_id)!
        var unmapped: UInt64 = 0
        var failure: Errno?
        for area in table.areas(overlapping: range) {
            // A HW queue's internal access locks the areas it pinned (io_pagetable.c:772-776).
            if lockedByHWQueue(contextID, ioasID: cmd.ioas_id, area.start...area.last) {
                failure = .resourceBusy
                break
            }
            if area.start < range.lowerBound || area.last > range.upperBound {
                failure = .noSuchFileOrDirectory
                break
            }
            _ = table.removeArea(startingAt: area.start)
            unmapped += area.length
            dropPagesReference(contextID, area.pagesID)
            forgetDirtyPages(contextID, ioasID: cmd.ioas_id, area.start...area.last)
        }
        contexts[contextID]!.objects[cmd.ioas_id] = .ioas(table)
        try? repin(contextID)
        if let failure {
            errorAfterCommit = failure
            return
        }
        if !unmapAll && unmapped == 0 { throw .noSuchFileOrDirectory }
        cmd.length = unmapped
        unsafe command.respond(cmd)
    }

    /// An unmapped area's page-table entries go, and their dirty bits with them.
    mutating func forgetDirtyPages(_ contextID: Int, ioasID: UInt32, _ range: ClosedRange<UInt64>) {
        for (id, object) in contexts[contextID]!.objects {
            guard case .hwptPaging(var hwpt) = object, hwpt.ioasID == ioasID, !hwpt.dirtyPages.isEmpty else { continue }
            hwpt.dirtyPages = hwpt.dirtyPages.filter { !range.contains($0) }
            contexts[contextID]!.objects[id] = .hwptPaging(hwpt)
        }
    }

    mutating func dropPagesReference(_ contextID: Int, _ pagesID: Int) {
        guard var pages = contexts[contextID]!.pages[pagesID] else { return }
        pages.areaReferences -= 1
        if pages.areaReferences > 0 {
            contexts[contextID]!.pages[pagesID] = pages
            return
        }
        contexts[contextID]!.pages[pagesID] = nil
        if case .file(let fileID, _) = pages.source {
            memoryFiles[fileID]?.references -= 1
            pendingFrees += collectMemoryFile(fileID)
        }
        if case .dmaBuf(let id, _) = pages.source { releaseDMABuf(id) }
    }
}
