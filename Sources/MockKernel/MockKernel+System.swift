public import IOMMUFDSystem
public import SystemPackage
import CIOMMUFD
#if canImport(Glibc)
import Glibc
#endif

// The SystemInterface conformance: files, descriptors, memory, limits.
extension MockKernel {
    public func open(_ path: String, flags: Int32, mode: UInt32) throws(Errno) -> Int32 {
        try state.withLock { (state) throws(Errno) -> Int32 in
            try state.run("open") { (state) throws(Errno) -> Int32 in
                let descriptor: OpenDescriptor
                if path == "/dev/iommu" {
                    switch state.configuration.iommuDevice {
                    case .absent: throw .noSuchFileOrDirectory
                    case .permissionDenied: throw .permissionDenied
                    case .present: break
                    }
                    let contextID = state.nextContextID
                    state.nextContextID += 1
                    state.contexts[contextID] = IOMMUContext()
                    descriptor = .iommufd(contextID: contextID)
                } else if let node = try state.openVFIONode(path) {
                    descriptor = node
                } else if let node = try state.openHugetlbfsFile(path, flags: flags) {
                    descriptor = node
                } else if let contents = state.configuration.files[path] {
                    descriptor = .regularFile(path: path, contents: contents)
                } else {
                    throw .noSuchFileOrDirectory
                }
                if flags & O_CLOEXEC == 0 { state.descriptorsWithoutCloexec += 1 }
                let fd = state.lowestFreeDescriptor()
                state.descriptors[fd] = descriptor
                return fd
            }
        }
    }

    public func close(_ fd: Int32) throws(Errno) {
        let freed = try state.withLock { (state) throws(Errno) -> [UInt] in
            // Linux releases the descriptor even when close reports an error.
            let injected = state.enter("close")
            guard let descriptor = state.descriptors.removeValue(forKey: fd) else {
                state.record("close", .badFileDescriptor)
                throw .badFileDescriptor
            }
            var freed: [UInt] = []
            switch descriptor {
            case .iommufd(let contextID):
                // Bound VFIO devices keep the context alive until they unbind.
                if state.vfio.deviceFiles.values.contains(where: { $0.boundContext == contextID }) {
                    state.vfio.orphanedContexts.insert(contextID)
                } else {
                    state.destroyContext(contextID)
                }
            case .memoryFile(let id):
                freed += state.releaseMemoryFile(id)
            case .eventCounter, .regularFile:
                break
            case .vfioContainer(let id):
                state.collectContainer(id)
            case .vfioGroup(let number):
                if let containerID = state.vfio.groups[number]?.container { state.leaveContainer(number, containerID) }
                state.vfio.groups[number] = nil
            case .vfioDevice(let fileID):
                state.closeDeviceFile(fileID)
            }
            state.record("close", injected)
            if let injected { throw injected }
            return freed
        }
        for base in freed { UnsafeMutableRawPointer(bitPattern: base)?.deallocate() }
    }

    public func ioctl(_ fd: Int32, _ request: UInt, _ argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
        defer { state.broadcast() }  // VFIO_DEVICE_SET_IRQS with DATA_BOOL can signal an eventfd
        return try state.withLock { (state) throws(Errno) -> Int32 in
            let name = state.ioctlName(request, on: state.descriptors[fd])
            return try state.run(name) { (state) throws(Errno) -> Int32 in
                switch state.descriptors[fd] {
                case nil:
                    throw .badFileDescriptor
                case .iommufd(let contextID)?:
                    return try state.iommufdIoctl(contextID: contextID, request: request, argument: argument)
                case .vfioContainer(let id)?:
                    return try state.vfioContainerIoctl(id, request: request, argument: argument)
                case .vfioGroup(let number)?:
                    return try state.vfioGroupIoctl(number, request: request, argument: argument)
                case .vfioDevice(let fileID)?:
                    if request == VFIO_DEVICE_RESET {
                        try state.resetDevice(fileID)
                        return 0
                    }
                    return try state.vfioDeviceIoctl(fileID, request: request, argument: argument)
                default:
                    throw .inappropriateIOCTLForDevice
                }
            }
        }
    }

    public func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try state.withLock { (state) throws(Errno) -> Int in
            try state.run("read") { (state) throws(Errno) -> Int in
                switch state.descriptors[fd] {
                case .eventCounter(let value)?:
                    guard buffer.count >= 8 else { throw .invalidArgument }
                    guard value > 0 else { throw .wouldBlock }
                    buffer.storeBytes(of: value, as: UInt64.self)
                    state.descriptors[fd] = .eventCounter(value: 0)
                    return 8
                case .regularFile(let path, let contents)?:
                    let count = min(buffer.count, contents.count)
                    buffer.copyBytes(from: contents.prefix(count))
                    state.descriptors[fd] = .regularFile(path: path, contents: Array(contents.dropFirst(count)))
                    return count
                case nil: throw .badFileDescriptor
                default: throw .invalidArgument
                }
            }
        }
    }

    public func write(_ fd: Int32, from buffer: UnsafeRawBufferPointer) throws(Errno) -> Int {
        defer { state.broadcast() }  // an eventfd may have become readable
        return try state.withLock { (state) throws(Errno) -> Int in
            try state.run("write") { (state) throws(Errno) -> Int in
                switch state.descriptors[fd] {
                case .eventCounter(let value)?:
                    guard buffer.count == 8 else { throw .invalidArgument }
                    state.descriptors[fd] = .eventCounter(value: value &+ buffer.loadUnaligned(as: UInt64.self))
                    return 8
                case .regularFile(let path, _)?:
                    state.configuration.files[path] = Array(buffer)
                    return buffer.count
                case nil: throw .badFileDescriptor
                default: throw .invalidArgument
                }
            }
        }
    }

    public func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, offset: Int64) throws(Errno) -> Int {
        try state.withLock { (state) throws(Errno) -> Int in
            try state.run("pread") { (state) throws(Errno) -> Int in
                switch state.descriptors[fd] {
                case .regularFile(let path, _)?:
                    let contents = state.configuration.files[path] ?? []
                    guard offset >= 0 else { throw .invalidArgument }
                    let start = min(Int(offset), contents.count)
                    let count = min(buffer.count, contents.count - start)
                    buffer.copyBytes(from: contents[start..<(start + count)])
                    return count
                case .memoryFile(let id)?:
                    guard let file = state.memoryFiles[id], offset >= 0 else { throw .invalidArgument }
                    let start = min(UInt64(offset), file.size)
                    let count = Int(min(UInt64(buffer.count), file.size - start))
                    if count > 0, let base = UnsafeRawPointer(bitPattern: file.storage) {
                        buffer.baseAddress!.copyMemory(from: base + Int(start), byteCount: count)
                    }
                    return count
                case .vfioDevice(let fileID)?:
                    guard offset >= 0, buffer.count > 0 else { throw .invalidArgument }
                    return try state.deviceRead(fileID, into: buffer, offset: offset)
                case nil: throw .badFileDescriptor
                default: throw .illegalSeek
                }
            }
        }
    }

    public func pwrite(_ fd: Int32, from buffer: UnsafeRawBufferPointer, offset: Int64) throws(Errno) -> Int {
        try state.withLock { (state) throws(Errno) -> Int in
            try state.run("pwrite") { (state) throws(Errno) -> Int in
                switch state.descriptors[fd] {
                case .memoryFile(let id)?:
                    guard let file = state.memoryFiles[id], offset >= 0 else { throw .invalidArgument }
                    guard UInt64(offset) + UInt64(buffer.count) <= file.size else { throw .noSpace }
                    if buffer.count > 0, let base = UnsafeMutableRawPointer(bitPattern: file.storage) {
                        (base + Int(offset)).copyMemory(from: buffer.baseAddress!, byteCount: buffer.count)
                    }
                    return buffer.count
                case .vfioDevice(let fileID)?:
                    guard offset >= 0, buffer.count > 0 else { throw .invalidArgument }
                    return try state.deviceWrite(fileID, from: buffer, offset: offset)
                case .regularFile(let path, _)?:
                    var contents = state.configuration.files[path] ?? []
                    let end = Int(offset) + buffer.count
                    if contents.count < end { contents += [UInt8](repeating: 0, count: end - contents.count) }
                    contents.replaceSubrange(Int(offset)..<end, with: buffer)
                    state.configuration.files[path] = contents
                    return buffer.count
                case nil: throw .badFileDescriptor
                default: throw .illegalSeek
                }
            }
        }
    }

    public func mmap(address: UnsafeMutableRawPointer?, length: Int, protection: Int32, flags: Int32, fd: Int32, offset: Int64) throws(Errno) -> UnsafeMutableRawPointer {
        // Anonymous memory is allocated outside the lock and released if the call fails.
        let anonymous = flags & MAP_ANONYMOUS != 0
        let rounded = (UInt64(max(length, 0)) + pageSize - 1) & ~(pageSize - 1)
        var fresh: UnsafeMutableRawPointer?
        defer { _ = fresh }
        if anonymous && length > 0 && length < Int.max / 2 {
            fresh = UnsafeMutableRawPointer.allocate(byteCount: Int(rounded), alignment: Int(pageSize))
            fresh!.initializeMemory(as: UInt8.self, repeating: 0, count: Int(rounded))
        }
        let freshBase = fresh.map { UInt(bitPattern: $0) }
        do {
            let address = try state.withLock { (state) throws(Errno) -> UInt in
                try state.run("mmap") { (state) throws(Errno) -> UInt in
                    guard length > 0, address == nil, flags & MAP_FIXED == 0 else { throw .invalidArgument }
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
                    guard UInt64(offset) + fileLength <= file.capacity, file.storage != 0 else { throw .noMemory }
                    file.references += 1
                    state.memoryFiles[id] = file
                    let start = UInt64(file.storage) + UInt64(offset)
                    state.insertArea(VirtualMemoryArea(start: start, length: fileLength, writable: writable, backing: .memoryFile(id: id, offset: UInt64(offset))))
                    return UInt(start)
                }
            }
            return UnsafeMutableRawPointer(bitPattern: address)!
        } catch {
            fresh?.deallocate()
            throw error
        }
    }

    public func munmap(_ address: UnsafeMutableRawPointer, length: Int) throws(Errno) {
        let freed = try state.withLock { (state) throws(Errno) -> [UInt] in
            try state.run("munmap") { (state) throws(Errno) -> [UInt] in
                let start = UInt64(UInt(bitPattern: address))
                guard length > 0, start % pageSize == 0 else { throw .invalidArgument }
                let rounded = (UInt64(length) + pageSize - 1) & ~(pageSize - 1)
                return state.unmapMemory(start...(start + rounded - 1))
            }
        }
        for base in freed { UnsafeMutableRawPointer(bitPattern: base)?.deallocate() }
    }

    public func memfdCreate(_ name: String, flags: UInt32) throws(Errno) -> Int32 {
        try state.withLock { (state) throws(Errno) -> Int32 in
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
        try state.withLock { (state) throws(Errno) in
            try state.run("ftruncate") { (state) throws(Errno) in
                guard case .memoryFile(let id)? = state.descriptors[fd], var file = state.memoryFiles[id] else { throw .badFileDescriptor }
                guard length >= 0 else { throw .invalidArgument }
                let size = UInt64(length)
                // hugetlbfs_setattr: a size that is not a whole number of hugepages is EINVAL.
                let unit = file.hugePageSize > 0 ? file.hugePageSize : pageSize
                guard size % unit == 0 || file.hugePageSize == 0 else { throw .invalidArgument }
                if size > file.capacity {
                    // The model cannot move memory that is mapped; grow only while unmapped.
                    let mapped = state.areasOfMemory.contains { $0.backing == .memoryFile(id: id, offset: $0.backingOffset) }
                    guard !mapped else { throw .noMemory }
                    let capacity = (size + unit - 1) & ~(unit - 1)
                    let storage = UnsafeMutableRawPointer.allocate(byteCount: Int(capacity), alignment: Int(unit))
                    storage.initializeMemory(as: UInt8.self, repeating: 0, count: Int(capacity))
                    if let old = UnsafeMutableRawPointer(bitPattern: file.storage) {
                        storage.copyMemory(from: old, byteCount: Int(file.size))
                        old.deallocate()
                    }
                    file.storage = UInt(bitPattern: storage)
                    file.capacity = capacity
                }
                file.size = size
                state.memoryFiles[id] = file
            }
        }
    }

    public func eventfd(initialValue: UInt32, flags: Int32) throws(Errno) -> Int32 {
        try state.withLock { (state) throws(Errno) -> Int32 in
            try state.run("eventfd") { (state) throws(Errno) -> Int32 in
                if flags & Int32(EFD_CLOEXEC) == 0 { state.descriptorsWithoutCloexec += 1 }
                let fd = state.lowestFreeDescriptor()
                state.descriptors[fd] = .eventCounter(value: UInt64(initialValue))
                return fd
            }
        }
    }

    /// `poll(2)` for `POLLIN`: an eventfd is readable while its counter is non-zero, a
    /// regular file always; an fd the model does not know is `EBADF` (the kernel's
    /// `POLLNVAL`, which ``LinuxSystem`` reports the same way). The wait really blocks, until
    /// an interrupt, a write or an ioctl makes a counter non-zero, or the timeout passes.
    public func waitReadable(_ fds: [Int32], timeoutNanoseconds: UInt64?) throws(Errno) -> [Int] {
        try state.withLock { (state) throws(Errno) in
            try state.run("poll") { (state) throws(Errno) in
                for fd in fds {
                    switch state.descriptors[fd] {
                    case .eventCounter?, .regularFile?: break
                    case nil: throw .badFileDescriptor
                    default: throw .invalidArgument  // not modelled for other kinds: refuse loudly
                    }
                }
            }
        }
        return state.wait(timeoutNanoseconds: timeoutNanoseconds) { state -> [Int]? in
            let ready = fds.indices.filter { index in
                switch state.descriptors[fds[index]] {
                case .eventCounter(let value)?: value > 0
                case .regularFile?: true
                default: true  // closed meanwhile: poll reports it (POLLNVAL) rather than sleeping on
                }
            }
            return ready.isEmpty ? nil : ready
        } ?? []
    }

    public func processID() -> Int32 { state.withLock { $0.configuration.processID } }

    public func monotonicNanoseconds() -> UInt64 { LinuxSystem().monotonicNanoseconds() }

    public func sleep(nanoseconds: UInt64) { LinuxSystem().sleep(nanoseconds: nanoseconds) }

    public func readFile(_ path: String) throws(Errno) -> [UInt8] {
        try state.withLock { (state) throws(Errno) -> [UInt8] in
            // Named apart from read(2) on a descriptor (an eventfd's counter), so a trace or a
            // fault rule can tell a sysfs attribute from an interrupt.
            try state.run("readFile") { (state) throws(Errno) -> [UInt8] in
                if let attribute = state.hugePageAttribute(path) { return attribute }
                guard let contents = state.configuration.files[path] else { throw .noSuchFileOrDirectory }
                return contents
            }
        }
    }

    public func writeFile(_ path: String, _ bytes: [UInt8]) throws(Errno) {
        try state.withLock { (state) throws(Errno) in
            try state.run("writeFile") { (state) throws(Errno) in
                if try state.writePCIAttribute(path, bytes) { return }
                guard state.configuration.files[path] != nil else { throw .noSuchFileOrDirectory }
                state.configuration.files[path] = bytes
            }
        }
    }

    public func createFile(_ path: String, _ bytes: [UInt8]) throws(Errno) {
        try state.withLock { (state) throws(Errno) in
            try state.run("open") { (state) throws(Errno) in
                // sysfs and procfs do not make new files.
                guard !path.hasPrefix("/sys/"), !path.hasPrefix("/proc/") else { throw .permissionDenied }
                state.configuration.files[path] = bytes
            }
        }
    }

    public func removeFile(_ path: String) throws(Errno) {
        try state.withLock { (state) throws(Errno) in
            try state.run("unlink") { (state) throws(Errno) in
                guard !path.hasPrefix("/sys/"), !path.hasPrefix("/proc/") else { throw .permissionDenied }
                if let id = state.hugetlbfsFiles.removeValue(forKey: path) {
                    // The name held one reference; open descriptors and mappings keep the file.
                    state.pendingFrees += state.releaseMemoryFile(id)
                    return
                }
                guard state.configuration.files.removeValue(forKey: path) != nil else { throw .noSuchFileOrDirectory }
            }
        }
    }

    public func readLink(_ path: String) throws(Errno) -> String {
        try state.withLock { (state) throws(Errno) -> String in
            try state.run("readlink") { (state) throws(Errno) -> String in
                if let target = state.configuration.links[path] { return target }
                throw state.configuration.files[path] != nil ? .invalidArgument : .noSuchFileOrDirectory
            }
        }
    }

    public func listDirectory(_ path: String) throws(Errno) -> [String] {
        try state.withLock { (state) throws(Errno) -> [String] in
            try state.run("opendir") { (state) throws(Errno) -> [String] in
                let prefix = path.hasSuffix("/") ? path : path + "/"
                var names = Set<String>(state.hugePageDirectory(path))
                for key in Array(state.configuration.files.keys) + Array(state.configuration.links.keys) where key.hasPrefix(prefix) {
                    if let name = key.dropFirst(prefix.count).split(separator: "/").first { names.insert(String(name)) }
                }
                if names.isEmpty { throw .noSuchFileOrDirectory }
                return names.sorted()
            }
        }
    }

    public func memoryLockLimit() throws(Errno) -> ResourceLimit {
        try state.withLock { (state) throws(Errno) -> ResourceLimit in
            try state.run("getrlimit") { (state) throws(Errno) -> ResourceLimit in
                ResourceLimit(current: state.configuration.memlockLimit, maximum: state.configuration.memlockMaximum)
            }
        }
    }

    public func setMemoryLockLimit(_ limit: ResourceLimit) throws(Errno) {
        try state.withLock { (state) throws(Errno) in
            try state.run("setrlimit") { (state) throws(Errno) in
                let raisesMaximum = (limit.maximum ?? .max) > (state.configuration.memlockMaximum ?? .max)
                if raisesMaximum && !state.configuration.hasSysResource { throw .notPermitted }
                if (limit.current ?? .max) > (limit.maximum ?? .max) { throw .invalidArgument }
                state.configuration.memlockLimit = limit.current
                state.configuration.memlockMaximum = limit.maximum
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
    mutating func unmapMemory(_ range: ClosedRange<UInt64>) -> [UInt] {
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
        var freed: [UInt] = []
        for base in Array(allocations.keys) {
            let inUse = areasOfMemory.contains { $0.backing == .anonymous(allocationBase: base) }
            if !inUse {
                allocations[base] = nil
                freed.append(base)
            }
        }
        for (id, dropped) in touchedFiles where dropped != 0 {
            memoryFiles[id]?.references -= dropped
            freed += collectMemoryFile(id)
        }
        return freed
    }

    /// Drops one reference to a memfd (its descriptor) and returns storage to free.
    mutating func releaseMemoryFile(_ id: Int) -> [UInt] {
        memoryFiles[id]?.references -= 1
        return collectMemoryFile(id)
    }

    mutating func collectMemoryFile(_ id: Int) -> [UInt] {
        guard let file = memoryFiles[id], file.references <= 0 else { return [] }
        memoryFiles[id] = nil
        if file.reservedHugePages > 0 { hugePagesInUse[file.hugePageSize, default: 0] -= file.reservedHugePages }
        return file.storage == 0 ? [] : [file.storage]
    }

    /// Whether every page of `[start, start + length)` is mapped (and writable when asked).
    func memoryIsMapped(start: UInt64, length: UInt64, writable: Bool) -> Bool {
        var cursor = start
        let end = start + length
        while cursor < end {
            guard let area = areasOfMemory.first(where: { $0.start <= cursor && cursor <= $0.last }) else { return false }
            if writable && !area.writable { return false }
            let (next, overflow) = area.last.addingReportingOverflow(1)
            if overflow { return true }
            cursor = next
        }
        return true
    }
}
