import IOMMUFDSystem
import CIOMMUFD
import SystemPackage

/// The user's command buffer after `copy_struct_from_user`: a kernel-sized copy, and
/// the ability to write the answer back (`iommufd_ucmd_respond`).
struct UserCommand {
    let user: UnsafeMutableRawPointer
    let userSize: Int
    let kernel: UnsafeMutableRawPointer

    func load<T>(_ type: T.Type) -> T { kernel.load(as: T.self) }

    func respond<T>(_ value: T) {
        var value = value
        withUnsafeBytes(of: &value) { bytes in
            user.copyMemory(from: bytes.baseAddress!, byteCount: min(userSize, bytes.count))
        }
    }
}

extension KernelState {
    /// `iommufd_fops_ioctl`: the ABI rules common to every command, then the command.
    mutating func iommufdIoctl(contextID: Int, request: UInt, argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
        let nr = UInt32(request & 0xff)
        let tableEnd: UInt32 = configuration.selftestEnabled ? 0xa0 : 0x95
        // Outside the table the kernel tries the VFIO compat ioctls (not built here): ENOTTY.
        guard nr >= 0x80, nr <= tableEnd else { throw .inappropriateIOCTLForDevice }
        guard let argument else { throw .badAddress }
        let userSize = Int(argument.loadUnaligned(as: UInt32.self))
        // The kernel's table (iommufd_ioctl_ops), from the toolkit's one descriptor table.
        guard let operation = IOMMUOperation(request: request, family: .iommufd) ?? IOMMUOperation(request: request, family: .selftest),
              let shape = operation.ioctl else { throw .inappropriateIOCTLForDevice }
        let implemented = operation == .testCommand ? configuration.selftestEnabled : configuration.supportedCommands.contains(nr)
        guard implemented else { throw .inappropriateIOCTLForDevice }
        guard userSize >= shape.minimumSize else { throw .invalidArgument }

        let kernel = UnsafeMutableRawPointer.allocate(byteCount: shape.kernelSize, alignment: 8)
        defer { kernel.deallocate() }
        kernel.initializeMemory(as: UInt8.self, repeating: 0, count: shape.kernelSize)
        kernel.copyMemory(from: argument, byteCount: min(userSize, shape.kernelSize))
        if userSize > shape.kernelSize {
            let tail = UnsafeRawBufferPointer(start: argument + shape.kernelSize, count: userSize - shape.kernelSize)
            guard tail.allSatisfy({ $0 == 0 }) else { throw .argListTooLong }
        }
        let command = UserCommand(user: argument, userSize: userSize, kernel: kernel)
        switch operation {
        case .destroy: try destroy(contextID, command)
        case .ioasAlloc: try ioasAlloc(contextID, command)
        case .ioasAllowIOVAs: try ioasAllowIOVAs(contextID, command)
        case .ioasCopy: try ioasCopy(contextID, command)
        case .ioasIOVARanges: try ioasIOVARanges(contextID, command)
        case .ioasMap: try ioasMap(contextID, command)
        case .ioasUnmap: try ioasUnmap(contextID, command)
        case .option: try option(contextID, command)
        case .vfioIOAS: try vfioIOAS(contextID, command)
        case .ioasMapFile: try ioasMapFile(contextID, command)
        case .ioasChangeProcess: try ioasChangeProcess(contextID, command)
        case .testCommand: try selftest(contextID, command)
        default: try unmodelledCommand(contextID, operation, command)
        }
        return 0
    }

    // MARK: Objects

    private mutating func destroy(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        let id = command.load(iommu_destroy.self).id
        try destroyObject(contextID, id)
    }

    /// `iommufd_object_remove`: only an object nobody else holds can go.
    mutating func destroyObject(_ contextID: Int, _ id: UInt32) throws(Errno) {
        guard let object = contexts[contextID]?.objects[id] else { throw .noSuchFileOrDirectory }
        switch object {
        case .ioas:
            let referenced = contexts[contextID]!.objects.values.contains { object in
                if case .hwptPaging(let hwpt) = object { return hwpt.ioasID == id }
                return false
            }
            if referenced { throw .resourceBusy }
            if contexts[contextID]!.vfioIOAS == id { contexts[contextID]!.vfioIOAS = nil }
            var table = contexts[contextID]!.ioas(id)!
            for area in table.removeAllAreas() { dropPagesReference(contextID, area.pagesID) }
            contexts[contextID]!.objects[id] = nil
        case .hwptPaging(let hwpt):
            if hwpt.attachedDevices > 0 { throw .resourceBusy }
            contexts[contextID]!.objects[id] = nil
            removeDomain(contextID, ioasID: hwpt.ioasID, hwptID: id)
        case .device:
            // Held by its driver (the VFIO device or the selftest object).
            throw .resourceBusy
        case .selftest(let deviceID):
            detachDevice(contextID, deviceID)
            contexts[contextID]!.objects[deviceID] = nil
            contexts[contextID]!.objects[id] = nil
        }
    }

    /// Closing `/dev/iommu` destroys everything the context still holds.
    mutating func destroyContext(_ contextID: Int) {
        guard let context = contexts[contextID] else { return }
        for (id, object) in context.objects { if case .selftest = object { try? destroyObject(contextID, id) } }
        for (id, object) in contexts[contextID]!.objects { if case .hwptPaging = object { try? destroyObject(contextID, id) } }
        for (id, object) in contexts[contextID]!.objects { if case .ioas = object { try? destroyObject(contextID, id) } }
        try? repin(contextID)
        contexts[contextID] = nil
    }

    private mutating func ioasAlloc(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        var cmd = command.load(iommu_ioas_alloc.self)
        guard cmd.flags == 0 else { throw .notSupported }
        cmd.out_ioas_id = contexts[contextID]!.insert(.ioas(IOPageTable()))
        command.respond(cmd)
    }

    // MARK: IOVA space

    private mutating func ioasIOVARanges(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        var cmd = command.load(iommu_ioas_iova_ranges.self)
        guard cmd.__reserved == 0 else { throw .notSupported }
        guard let table = contexts[contextID]!.ioas(cmd.ioas_id) else { throw .noSuchFileOrDirectory }
        let capacity = cmd.num_iovas
        let ranges = table.usableRanges
        cmd.out_iova_alignment = table.iovaAlignment
        for (index, range) in ranges.enumerated() where index < capacity {
            guard let array = UnsafeMutableRawPointer(bitPattern: UInt(cmd.allowed_iovas)) else { throw .badAddress }
            array.storeBytes(of: iommu_iova_range(start: range.lowerBound, last: range.upperBound),
                             toByteOffset: index * MemoryLayout<iommu_iova_range>.stride, as: iommu_iova_range.self)
        }
        cmd.num_iovas = UInt32(ranges.count)
        command.respond(cmd)
        if cmd.num_iovas > capacity { errorAfterCommit = .messageTooLong }
    }

    private mutating func ioasAllowIOVAs(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        let cmd = command.load(iommu_ioas_allow_iovas.self)
        guard cmd.__reserved == 0 else { throw .notSupported }
        guard var table = contexts[contextID]!.ioas(cmd.ioas_id) else { throw .noSuchFileOrDirectory }
        var ranges: [ClosedRange<UInt64>] = []
        for index in 0..<Int(cmd.num_iovas) {
            guard let array = UnsafeRawPointer(bitPattern: UInt(cmd.allowed_iovas)) else { throw .badAddress }
            let range = array.load(fromByteOffset: index * MemoryLayout<iommu_iova_range>.stride, as: iommu_iova_range.self)
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
    private func checkMapArguments(flags: UInt32, reserved: UInt32 = 0, values: UInt64...) throws(Errno) {
        guard flags & ~Self.mapFlags == 0, reserved == 0 else { throw .notSupported }
        guard values.allSatisfy({ $0 < ulongMax }) else { throw .overflow }
        guard flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE) != 0 else { throw .invalidArgument }
    }

    private mutating func ioasMap(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        var cmd = command.load(iommu_ioas_map.self)
        try checkMapArguments(flags: cmd.flags, reserved: cmd.__reserved, values: cmd.iova, cmd.length)
        guard contexts[contextID]!.ioas(cmd.ioas_id) != nil else { throw .noSuchFileOrDirectory }
        // iopt_alloc_user_pages
        let (_, wraps) = cmd.user_va.addingReportingOverflow(cmd.length)
        guard !wraps else { throw .overflow }
        guard cmd.length != 0, cmd.length <= ulongMax - pageSize else { throw .invalidArgument }
        let base = cmd.user_va & ~(pageSize - 1)
        let startByte = cmd.user_va - base
        let pagesID = newPages(contextID, PagesObject(
            source: .user(base: base), pageCount: (cmd.length + startByte + pageSize - 1) / pageSize,
            writable: cmd.flags & IOMMU_IOAS_MAP_WRITEABLE != 0))
        cmd.iova = try mapPages(contextID, ioasID: cmd.ioas_id, pieces: [(pagesID, startByte, cmd.length)],
                                length: cmd.length, fixedIOVA: fixed(cmd.flags) ? cmd.iova : nil, flags: cmd.flags)
        command.respond(cmd)
    }

    private mutating func ioasMapFile(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        var cmd = command.load(iommu_ioas_map_file.self)
        try checkMapArguments(flags: cmd.flags, values: cmd.iova, cmd.length)
        guard contexts[contextID]!.ioas(cmd.ioas_id) != nil else { throw .noSuchFileOrDirectory }
        guard cmd.length != 0 else { throw .invalidArgument }
        let (_, wraps) = cmd.start.addingReportingOverflow(cmd.length - 1)
        guard !wraps else { throw .overflow }
        guard case .memoryFile(let fileID)? = descriptors[cmd.fd] else {
            throw descriptors[cmd.fd] == nil ? .badFileDescriptor : .invalidArgument
        }
        let startByte = cmd.start % pageSize
        let pagesID = newPages(contextID, PagesObject(
            source: .file(memoryFileID: fileID, start: cmd.start - startByte),
            pageCount: (cmd.length + startByte + pageSize - 1) / pageSize,
            writable: cmd.flags & IOMMU_IOAS_MAP_WRITEABLE != 0))
        memoryFiles[fileID]?.references += 1
        cmd.iova = try mapPages(contextID, ioasID: cmd.ioas_id, pieces: [(pagesID, startByte, cmd.length)],
                                length: cmd.length, fixedIOVA: fixed(cmd.flags) ? cmd.iova : nil, flags: cmd.flags)
        command.respond(cmd)
    }

    private mutating func ioasCopy(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        var cmd = command.load(iommu_ioas_copy.self)
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
        command.respond(cmd)
    }

    private func fixed(_ flags: UInt32) -> Bool { flags & IOMMU_IOAS_MAP_FIXED_IOVA != 0 }

    private mutating func newPages(_ contextID: Int, _ pages: PagesObject) -> Int {
        let id = contexts[contextID]!.nextPagesID
        contexts[contextID]!.nextPagesID += 1
        contexts[contextID]!.pages[id] = pages
        return id
    }

    /// `iopt_map_pages`: place the areas (kernel-chosen or fixed IOVA), then fill the domains.
    private mutating func mapPages(
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
            case .file(_, let start): sourceStart = start &+ first.startByte
            }
            switch table.allocate(length: length, address: sourceStart) {
            case .success(let chosen): iova = chosen
            case .failure(let error): throw error
            }
        }
        var cursor = iova
        for piece in pieces {
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

    private mutating func ioasUnmap(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        var cmd = command.load(iommu_ioas_unmap.self)
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
            if area.start < range.lowerBound || area.last > range.upperBound {
                failure = .noSuchFileOrDirectory
                break
            }
            _ = table.removeArea(startingAt: area.start)
            unmapped += area.length
            dropPagesReference(contextID, area.pagesID)
        }
        contexts[contextID]!.objects[cmd.ioas_id] = .ioas(table)
        try? repin(contextID)
        if let failure {
            errorAfterCommit = failure
            return
        }
        if !unmapAll && unmapped == 0 { throw .noSuchFileOrDirectory }
        cmd.length = unmapped
        command.respond(cmd)
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
            for storage in collectMemoryFile(fileID) { pendingFrees.append(storage) }
        }
    }

    // MARK: Options

    private mutating func option(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        var cmd = command.load(iommu_option.self)
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
        var answer = command.user.loadUnaligned(as: iommu_option.self)
        answer.val64 = cmd.val64
        command.user.storeBytes(of: answer.val64, toByteOffset: 16, as: UInt64.self)
    }

    private mutating func vfioIOAS(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        var cmd = command.load(iommu_vfio_ioas.self)
        guard cmd.__reserved == 0 else { throw .notSupported }
        switch cmd.op {
        case IOMMU_VFIO_IOAS_GET:
            guard let id = contexts[contextID]!.vfioIOAS else { throw .noSuchFileOrDirectory }
            cmd.ioas_id = id
            command.respond(cmd)
        case IOMMU_VFIO_IOAS_SET:
            guard contexts[contextID]!.ioas(cmd.ioas_id) != nil else { throw .noSuchFileOrDirectory }
            contexts[contextID]!.vfioIOAS = cmd.ioas_id
        case IOMMU_VFIO_IOAS_CLEAR:
            contexts[contextID]!.vfioIOAS = nil
        default:
            throw .notSupported
        }
    }

    private mutating func ioasChangeProcess(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        let cmd = command.load(iommu_ioas_change_process.self)
        guard cmd.__reserved == 0 else { throw .notSupported }
        // Only file-backed mappings can move to another process.
        for pages in contexts[contextID]!.pages.values {
            if case .user = pages.source { throw .invalidArgument }
        }
    }

    /// Commands that need real devices or vIOMMUs, which the model does not have yet:
    /// their generic argument checks, then the answer of a kernel without such a device.
    private mutating func unmodelledCommand(_ contextID: Int, _ operation: IOMMUOperation, _ command: UserCommand) throws(Errno) {
        switch operation {
        case .hwptAlloc:
            let cmd = command.load(iommu_hwpt_alloc.self)
            guard cmd.__reserved == 0 else { throw .notSupported }
            guard case .device? = contexts[contextID]!.objects[cmd.dev_id] else { throw .noSuchFileOrDirectory }
            throw .notSupported
        case .getHWInfo:
            var cmd = command.load(iommu_hw_info.self)
            guard case .device? = contexts[contextID]!.objects[cmd.dev_id] else { throw .noSuchFileOrDirectory }
            // A VFIO-bound PCI function sits behind the modelled intel-iommu (QEMU's registers).
            guard vfio.deviceFiles.values.contains(where: { $0.boundContext == contextID && $0.boundDeviceID == cmd.dev_id }) else {
                throw .notSupported
            }
            guard cmd.flags == 0, cmd.__reserved == (0, 0, 0) else { throw .notSupported }
            var vtd = iommu_hw_info_vtd()
            vtd.cap_reg = 0xd2_008c_2226_0206
            vtd.ecap_reg = 0xf0_0f4a
            let kernelLength = MemoryLayout<iommu_hw_info_vtd>.size
            if cmd.data_len > 0 {
                // The buffer is usually on the caller's stack, outside the modelled mmaps: only NULL faults.
                guard let destination = UnsafeMutableRawPointer(bitPattern: UInt(cmd.data_uptr)) else { throw .badAddress }
                let copied = min(Int(cmd.data_len), kernelLength)
                withUnsafeBytes(of: &vtd) { destination.copyMemory(from: $0.baseAddress!, byteCount: copied) }
                if Int(cmd.data_len) > kernelLength {
                    (destination + kernelLength).initializeMemory(as: UInt8.self, repeating: 0, count: Int(cmd.data_len) - kernelLength)
                }
            }
            cmd.data_len = UInt32(kernelLength)
            cmd.out_data_type = IOMMU_HW_INFO_TYPE_INTEL_VTD
            cmd.out_max_pasid_log2 = 0
            cmd.out_capabilities = 0
            command.respond(cmd)
        case .ioasNoIOMMUGetPA:
            throw .notPermitted
        default:
            throw .noSuchFileOrDirectory
        }
    }
}
