import IOMMUFDSystem
public import SystemPackage
import CIOMMUFD
#if canImport(Glibc)
import Glibc
#endif

// The SystemInterface conformance, memory: mmap, munmap, memfd_create and ftruncate, with
// the process's memory areas they maintain.
extension MockKernel {
    public func mmap(address: UnsafeMutableRawPointer?, length: Int, protection: Int32, flags: Int32, fd: Int32, offset: Int64) throws(Errno) -> UnsafeMutableRawPointer {
        // Anonymous memory is allocated outside the lock and released if the call fails.
        let anonymous = flags & MAP_ANONYMOUS != 0
        let rounded = (UInt64(max(length, 0)) + pageSize - 1) & ~(pageSize - 1)
        var fresh: UnsafeMutableRawPointer?
        defer { _ = unsafe fresh }
        if anonymous && length > 0 && length < Int.max / 2 {
            unsafe fresh = UnsafeMutableRawPointer.allocate(byteCount: Int(rounded), alignment: Int(pageSize))
            unsafe fresh!.initializeMemory(as: UInt8.self, repeating: 0, count: Int(rounded))
        }
        let freshBase = unsafe fresh.map { UInt(bitPattern: $0) }
        do {
            let address = unsafe try state.withLock { (state) throws(Errno) -> UInt in
                try state.run("mmap") { (state) throws(Errno) -> UInt in
                    guard length > 0, unsafe address == nil, flags & MAP_FIXED == 0 else { throw .invalidArgument }
                    let writable = protection & PROT_WRITE != 0
                    if let freshBase {
                        let base = freshBase
                        state.allocations[base] = MemoryAllocation(byteCount: Int(rounded))
                        state.insertArea(VirtualMemoryArea(start: UInt64(base), length: rounded, writable: writable, backing: .anonymous(allocationBase: base)))
                        return base
                    }
                    if case .vfioDevice(let fileID)? = state.descriptors[fd] {
                        return try state.mapDeviceRegion(fileID, length: length, flags: flags, offset: offset, writable: writable)
                    }
                    guard case .memoryFile(let id)? = state.descriptors[fd], var file = state.memoryFiles[id] else { throw .badFileDescriptor }
                    let unit = file.hugePageSize > 0 ? file.hugePageSize : pageSize
                    guard offset >= 0, UInt64(offset) % unit == 0 else { throw .invalidArgument }
                    let fileLength = (rounded + unit - 1) & ~(unit - 1)
                    if file.hugePageSize > 0 {
                        // hugetlb_reserve_pages: a shared mapping reserves its pages at mmap; ENOMEM when the pool is short.
                        let needed = Int((UInt64(offset) + fileLength) / unit) - file.reservedHugePages
                        if needed > 0 {
                            guard state.freeHugePages(unit) >= needed else { throw .noMemory }
                            state.hugePagesInUse[unit, default: 0] += needed
                            file.reservedHugePages += needed
                        }
                    }
                    // A mapping may reach past the end of the file (mm/mmap.c does not look at
                    // i_size); its pages there are SIGBUS to touch and EFAULT to pin
                    // (`memoryIsBacked`). Each mmap is a view of its own on the file's pages:
                    // two mappings of one memfd have two addresses (the host call comes last,
                    // so nothing before it can fail and leave it behind).
                    let created = file.hostDescriptor < 0
                    if created { file.hostDescriptor = try HostMemoryFile.create() }
                    let start: UInt
                    do throws(Errno) {
                        start = try HostMemoryFile.map(file.hostDescriptor, offset: UInt64(offset), length: fileLength, alignment: unit)
                    } catch {
                        if created { HostResource.descriptor(file.hostDescriptor).release() }
                        throw error
                    }
                    file.references += 1
                    state.memoryFiles[id] = file
                    state.allocations[start] = MemoryAllocation(byteCount: Int(fileLength), isMemoryFileView: true)
                    state.insertArea(VirtualMemoryArea(start: UInt64(start), length: fileLength, writable: writable, backing: .memoryFile(id: id, offset: UInt64(offset))))
                    return start
                }
            }
            return unsafe UnsafeMutableRawPointer(bitPattern: address)!
        } catch {
            unsafe fresh?.deallocate()
            throw error
        }
    }

    public func munmap(_ address: UnsafeMutableRawPointer, length: Int) throws(Errno) {
        let freed = unsafe try state.withLock { (state) throws(Errno) -> [HostResource] in
            try state.run("munmap") { (state) throws(Errno) -> [HostResource] in
                let start = UInt64(UInt(bitPattern: address))
                guard length > 0, start % pageSize == 0 else { throw .invalidArgument }
                let rounded = (UInt64(length) + pageSize - 1) & ~(pageSize - 1)
                return state.unmapMemory(start...(start + rounded - 1))
            }
        }
        for resource in freed { resource.release() }
    }

    public func memfdCreate(_ name: String, flags: UInt32) throws(Errno) -> Int32 {
        unsafe try state.withLock { (state) throws(Errno) -> Int32 in
            try state.run("memfd_create") { (state) throws(Errno) -> Int32 in
                let sizeBits = CIOMMUFD_MFD_HUGE_MASK << CIOMMUFD_MFD_HUGE_SHIFT
                guard flags & ~(CIOMMUFD_MFD_CLOEXEC | CIOMMUFD_MFD_ALLOW_SEALING | CIOMMUFD_MFD_HUGETLB | sizeBits) == 0 else { throw .invalidArgument }
                var hugePageSize: UInt64 = 0
                if flags & CIOMMUFD_MFD_HUGETLB != 0 {
                    // mm/memfd.c: a size the kernel has no pool for is EINVAL (no size: the default, 2 MiB here).
                    let shift = (flags >> CIOMMUFD_MFD_HUGE_SHIFT) & CIOMMUFD_MFD_HUGE_MASK
                    hugePageSize = shift == 0 ? 1 << 21 : 1 << UInt64(shift)
                    guard state.configuration.hugePages[hugePageSize] != nil else { throw .invalidArgument }
                } else if flags & sizeBits != 0 {
                    throw .invalidArgument
                }
                if flags & CIOMMUFD_MFD_CLOEXEC == 0 { state.descriptorsWithoutCloexec += 1 }
                let id = state.nextMemoryFileID
                state.nextMemoryFileID += 1
                state.memoryFiles[id] = MemoryFile(name: name, references: 1, hugePageSize: hugePageSize)
                let fd = state.lowestFreeDescriptor()
                state.descriptors[fd] = .memoryFile(id: id)
                return fd
            }
        }
    }

    public func ftruncate(_ fd: Int32, length: Int64) throws(Errno) {
        unsafe try state.withLock { (state) throws(Errno) in
            try state.run("ftruncate") { (state) throws(Errno) in
                guard case .memoryFile(let id)? = state.descriptors[fd], var file = state.memoryFiles[id] else { throw .badFileDescriptor }
                guard length >= 0 else { throw .invalidArgument }
                let size = UInt64(length)
                // hugetlbfs_setattr: a size that is not a whole number of hugepages is EINVAL.
                let unit = file.hugePageSize > 0 ? file.hugePageSize : pageSize
                guard size % unit == 0 || file.hugePageSize == 0 else { throw .invalidArgument }
                if size > file.capacity {
                    // shmem_setattr: a memfd grows whether or not it is mapped; its mappings
                    // keep their addresses and reach the new pages. The host memfd grows, and
                    // the model's own view of it is made again at the new size (host calls
                    // last: nothing after them can fail).
                    let capacity = (size + unit - 1) & ~(unit - 1)
                    let created = file.hostDescriptor < 0
                    if created { file.hostDescriptor = try HostMemoryFile.create() }
                    let view: UInt
                    do throws(Errno) {
                        try HostMemoryFile.resize(file.hostDescriptor, to: capacity)
                        view = try HostMemoryFile.map(file.hostDescriptor, offset: 0, length: capacity, alignment: pageSize)
                    } catch {
                        if created { HostResource.descriptor(file.hostDescriptor).release() }
                        throw error
                    }
                    if file.storage != 0 { state.pendingFrees.append(.mapping(file.storage, length: Int(file.capacity))) }
                    file.storage = view
                    file.capacity = capacity
                }
                file.size = size
                state.memoryFiles[id] = file
            }
        }
    }
}

extension VirtualMemoryArea {
    var backingOffset: UInt64 {
        if case .memoryFile(_, let offset) = backing { return offset }
        return 0
    }
}

extension KernelState {
    mutating func insertArea(_ area: VirtualMemoryArea) {
        let index = areasOfMemory.firstIndex { $0.start > area.start } ?? areasOfMemory.endIndex
        areasOfMemory.insert(area, at: index)
    }

    /// Removes `range` from the process's mappings (splitting areas as needed) and returns
    /// the allocations that no area uses any more, to be freed after the call commits.
    mutating func unmapMemory(_ range: ClosedRange<UInt64>) -> [HostResource] {
        var kept: [VirtualMemoryArea] = []
        var touchedFiles: [Int: Int] = [:]
        for area in areasOfMemory {
            let span = area.start...area.last
            guard span.overlaps(range) else { kept.append(area); continue }
            if case .memoryFile(let id, _) = area.backing { touchedFiles[id, default: 0] += 1 }
            if area.start < range.lowerBound {
                var below = area
                below.length = range.lowerBound - area.start
                kept.append(below)
                if case .memoryFile(let id, _) = area.backing { touchedFiles[id, default: 0] -= 1 }
            }
            if area.last > range.upperBound {
                var above = area
                above.start = range.upperBound + 1
                above.length = area.last - range.upperBound
                if case .memoryFile(let id, let offset) = area.backing {
                    above.backing = .memoryFile(id: id, offset: offset + (above.start - area.start))
                    touchedFiles[id, default: 0] -= 1
                }
                kept.append(above)
            }
        }
        areasOfMemory = kept
        for (id, dropped) in touchedFiles where dropped != 0 {
            memoryFiles[id]?.references -= dropped
        }
        // A device file closed while mapped is released with its last mapping.
        for fileID in vfio.deviceFilesHeldByMappings where !areasOfMemory.contains(where: { $0.backing == .deviceMemory(fileID: fileID) }) {
            vfio.deviceFilesHeldByMappings.remove(fileID)
            closeDeviceFile(fileID)
        }
        return releaseUnreferencedMemory()
    }

    /// Frees what nothing holds any more: host memory no mapping uses (anonymous memory
    /// and memfd views) and memfds with no descriptor, mapping or pin, unless a pin still
    /// holds the pages. The kernel keeps pinned pages alive after `munmap` (iommufd's for a
    /// domain, type1's from map time): a device still reaches them at their IOVA, the
    /// process no longer sees them, and they go when the pin goes. Called after every call,
    /// so memory a pin kept is freed by the call that drops the pin.
    mutating func releaseUnreferencedMemory() -> [HostResource] {
        var freed: [HostResource] = []
        for base in unmappedAllocations {
            let allocation = allocations[base]!
            if !pinsHostMemory(UInt64(base)...UInt64(base) + UInt64(allocation.byteCount) - 1) {
                allocations[base] = nil
                freed.append(allocation.resource(at: base))
            }
        }
        for (id, file) in memoryFiles where file.references <= 0 {
            freed += collectMemoryFile(id)
        }
        return freed
    }

    /// Host memory no mapping uses any more (freed unless a pin keeps it). Allocations are
    /// disjoint host ranges, so an area belongs to the one that holds its start.
    var unmappedAllocations: [UInt] {
        // One pass over the areas, each placed by binary search among the sorted bases:
        // called after every call, so it stays O((areas + allocations) log allocations).
        let bases = allocations.keys.sorted()
        var used = Set<UInt>()
        for area in areasOfMemory {
            var low = 0, high = bases.count
            while low < high {
                let middle = (low + high) / 2
                if UInt64(bases[middle]) <= area.start { low = middle + 1 } else { high = middle }
            }
            guard low > 0 else { continue }
            let base = bases[low - 1]
            if area.start < UInt64(base) + UInt64(allocations[base]!.byteCount) { used.insert(base) }
        }
        return bases.filter { !used.contains($0) }
    }

    /// Host memory with no mapping and memfds with no reference: what only pins keep.
    var retainedMemoryCount: Int {
        unmappedAllocations.count + memoryFiles.values.filter { $0.references <= 0 }.count
    }

    /// Whether a pin holds any byte of `range` of the process's memory: a page of an
    /// iommufd area pinned for a domain (by its user address), or a type1 mapping (pinned
    /// whole at `VFIO_IOMMU_MAP_DMA`).
    func pinsHostMemory(_ range: ClosedRange<UInt64>) -> Bool {
        func overlaps(_ low: UInt64, _ high: UInt64) -> Bool { low <= range.upperBound && range.lowerBound <= high }
        for context in contexts.values {
            for (pagesID, pinned) in context.pinned {
                guard let pages = context.pages[pagesID], case .user(let base) = pages.source else { continue }
                for interval in pinned.intervals where overlaps(base + interval.lowerBound * pageSize, base + (interval.upperBound + 1) * pageSize - 1) {
                    return true
                }
            }
        }
        for container in vfio.containers.values {
            for mapping in container.mappings.values where overlaps(mapping.userAddress, mapping.userAddress + mapping.size - 1) {
                return true
            }
        }
        return false
    }

    /// Drops one reference to a memfd (its descriptor) and returns what to give back.
    mutating func releaseMemoryFile(_ id: Int) -> [HostResource] {
        memoryFiles[id]?.references -= 1
        return collectMemoryFile(id)
    }

    /// Forgets a memfd nothing refers to: its host memfd and the model's view of it go, and
    /// its hugepages return to the pool. Views that pins keep after `munmap` are allocations
    /// of their own and keep their pages on the host.
    mutating func collectMemoryFile(_ id: Int) -> [HostResource] {
        guard let file = memoryFiles[id], file.references <= 0 else { return [] }
        memoryFiles[id] = nil
        if file.reservedHugePages > 0 { hugePagesInUse[file.hugePageSize, default: 0] -= file.reservedHugePages }
        return file.hostResources
    }

    /// Whether every page of `[start, start + length)` is mapped (and writable when asked)
    /// and, with `requiringPages`, has a page behind it to fault in or pin: a memfd mapping
    /// that reaches past the end of the file has none there (shmem_fault answers
    /// VM_FAULT_SIGBUS beyond i_size, mm/shmem.c; a pin gets EFAULT from it, mm/gup.c).
    func memoryIsMapped(start: UInt64, length: UInt64, writable: Bool, requiringPages: Bool = true) -> Bool {
        var cursor = start
        let end = start + length
        while cursor < end {
            guard let area = areasOfMemory.first(where: { $0.start <= cursor && cursor <= $0.last }) else { return false }
            if writable && !area.writable { return false }
            if requiringPages, case .memoryFile(let id, let offset) = area.backing, let file = memoryFiles[id] {
                let unit = file.hugePageSize > 0 ? file.hugePageSize : pageSize
                let fileEnd = (file.size + unit - 1) & ~(unit - 1)
                let backedEnd = area.start + (fileEnd > offset ? fileEnd - offset : 0)
                if min(end, area.last &+ 1) > backedEnd { return false }
            }
            let (next, overflow) = area.last.addingReportingOverflow(1)
            if overflow { return true }
            cursor = next
        }
        return true
    }
}
