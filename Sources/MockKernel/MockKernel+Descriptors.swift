import IOMMUFDSystem
public import SystemPackage
import CIOMMUFD
#if canImport(Glibc)
import Glibc
#endif

// The SystemInterface conformance, descriptors: open, close, ioctl, read, write, pread,
// pwrite, eventfd and poll.
extension MockKernel {
    public func open(_ path: String, flags: Int32, mode: UInt32) throws(Errno) -> Int32 {
        unsafe try state.withLock { (state) throws(Errno) -> Int32 in
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
        let freed = unsafe try state.withLock { (state) throws(Errno) -> [HostResource] in
            // Linux releases the descriptor even when close reports an error.
            let injected = state.enter("close")
            guard let descriptor = state.descriptors.removeValue(forKey: fd) else {
                state.record("close", .badFileDescriptor)
                throw .badFileDescriptor
            }
            var freed: [HostResource] = []
            switch descriptor {
            case .iommufd(let contextID):
                // Bound VFIO devices and open event queue files keep the context alive.
                if state.contextHeld(contextID) {
                    state.vfio.orphanedContexts.insert(contextID)
                } else {
                    state.destroyContext(contextID)
                }
            case .memoryFile(let id):
                freed += state.releaseMemoryFile(id)
            case .eventCounter, .regularFile:
                break
            case .eventQueue(let contextID, let objectID):
                state.closeEventQueue(contextID, objectID)
            case .dmaBuf(let id):
                state.releaseDMABuf(id)
            case .vfioContainer(let id):
                state.collectContainer(id)
            case .vfioGroup(let number):
                if let containerID = state.vfio.groups[number]?.container { state.leaveContainer(number, containerID) }
                state.vfio.groups[number] = nil
            case .vfioDevice(let fileID):
                if state.areasOfMemory.contains(where: { $0.backing == .deviceMemory(fileID: fileID) }) {
                    state.vfio.deviceFilesHeldByMappings.insert(fileID)
                } else {
                    state.closeDeviceFile(fileID)
                }
            }
            // Closing can drop pins (a context, a container): memory only they kept goes now.
            freed += state.releaseUnreferencedMemory()
            state.record("close", injected)
            if let injected { throw injected }
            return freed
        }
        for resource in freed { resource.release() }
    }

    public func ioctl(_ fd: Int32, _ request: UInt, _ argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
        defer { unsafe state.broadcast() }  // VFIO_DEVICE_SET_IRQS with DATA_BOOL can signal an eventfd
        return unsafe try state.withLock { (state) throws(Errno) -> Int32 in
            let name = state.ioctlName(request, on: state.descriptors[fd])
            return try state.run(name) { (state) throws(Errno) -> Int32 in
                switch state.descriptors[fd] {
                case nil:
                    throw .badFileDescriptor
                case .iommufd(let contextID)?:
                    return unsafe try state.iommufdIoctl(contextID: contextID, request: request, argument: argument)
                case .vfioContainer(let id)?:
                    return unsafe try state.vfioContainerIoctl(id, request: request, argument: argument)
                case .vfioGroup(let number)?:
                    return unsafe try state.vfioGroupIoctl(number, request: request, argument: argument)
                case .vfioDevice(let fileID)?:
                    if request == VFIO_DEVICE_RESET {
                        try state.resetDevice(fileID)
                        return 0
                    }
                    return unsafe try state.vfioDeviceIoctl(fileID, request: request, argument: argument)
                default:
                    throw .inappropriateIOCTLForDevice
                }
            }
        }
    }

    public func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        unsafe try state.withLock { (state) throws(Errno) -> Int in
            try state.run("read") { (state) throws(Errno) -> Int in
                switch state.descriptors[fd] {
                case .eventCounter(let value)?:
                    guard buffer.count >= 8 else { throw .invalidArgument }
                    guard value > 0 else { throw .wouldBlock }
                    unsafe buffer.storeBytes(of: value, as: UInt64.self)
                    state.descriptors[fd] = .eventCounter(value: 0)
                    return 8
                case .eventQueue(let contextID, let objectID)?:
                    if case .fault? = state.contexts[contextID]?.objects[objectID] {
                        return unsafe try state.readFaultQueue(contextID, objectID, into: buffer)
                    }
                    return unsafe try state.readEventQueue(contextID, objectID, into: buffer)
                case .regularFile(let path, let contents)?:
                    let count = min(buffer.count, contents.count)
                    unsafe buffer.copyBytes(from: contents.prefix(count))
                    state.descriptors[fd] = .regularFile(path: path, contents: Array(contents.dropFirst(count)))
                    return count
                case nil: throw .badFileDescriptor
                default: throw .invalidArgument
                }
            }
        }
    }

    public func write(_ fd: Int32, from buffer: UnsafeRawBufferPointer) throws(Errno) -> Int {
        defer { unsafe state.broadcast() }  // an eventfd may have become readable
        return unsafe try state.withLock { (state) throws(Errno) -> Int in
            try state.run("write") { (state) throws(Errno) -> Int in
                switch state.descriptors[fd] {
                case .eventCounter(let value)?:
                    guard buffer.count == 8 else { throw .invalidArgument }
                    state.descriptors[fd] = unsafe .eventCounter(value: value &+ buffer.loadUnaligned(as: UInt64.self))
                    return 8
                case .regularFile(let path, _)?:
                    state.configuration.files[path] = unsafe Array(buffer)
                    return buffer.count
                case .eventQueue(let contextID, let objectID)?:
                    // A vEVENTQ's file has no write (the VFS answers EINVAL, read_write.c:671-674).
                    guard case .fault? = state.contexts[contextID]?.objects[objectID] else { throw .invalidArgument }
                    return unsafe try state.writeFaultQueue(contextID, objectID, from: buffer)
                case nil: throw .badFileDescriptor
                default: throw .invalidArgument
                }
            }
        }
    }

    public func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, offset: Int64) throws(Errno) -> Int {
        unsafe try state.withLock { (state) throws(Errno) -> Int in
            try state.run("pread") { (state) throws(Errno) -> Int in
                switch state.descriptors[fd] {
                case .regularFile(let path, _)?:
                    let contents = state.configuration.files[path] ?? []
                    guard offset >= 0 else { throw .invalidArgument }
                    let start = min(Int(offset), contents.count)
                    let count = min(buffer.count, contents.count - start)
                    unsafe buffer.copyBytes(from: contents[start..<(start + count)])
                    return count
                case .memoryFile(let id)?:
                    guard let file = state.memoryFiles[id], offset >= 0 else { throw .invalidArgument }
                    let start = min(UInt64(offset), file.size)
                    let count = Int(min(UInt64(buffer.count), file.size - start))
                    if count > 0, let base = unsafe UnsafeRawPointer(bitPattern: file.storage) {
                        unsafe buffer.baseAddress!.copyMemory(from: base + Int(start), byteCount: count)
                    }
                    return count
                case .vfioDevice(let fileID)?:
                    guard offset >= 0, buffer.count > 0 else { throw .invalidArgument }
                    return unsafe try state.deviceRead(fileID, into: buffer, offset: offset)
                case nil: throw .badFileDescriptor
                default: throw .illegalSeek
                }
            }
        }
    }

    public func pwrite(_ fd: Int32, from buffer: UnsafeRawBufferPointer, offset: Int64) throws(Errno) -> Int {
        unsafe try state.withLock { (state) throws(Errno) -> Int in
            try state.run("pwrite") { (state) throws(Errno) -> Int in
                switch state.descriptors[fd] {
                case .memoryFile(let id)?:
                    guard let file = state.memoryFiles[id], offset >= 0 else { throw .invalidArgument }
                    guard UInt64(offset) + UInt64(buffer.count) <= file.size else { throw .noSpace }
                    if buffer.count > 0, let base = unsafe UnsafeMutableRawPointer(bitPattern: file.storage) {
                        unsafe (base + Int(offset)).copyMemory(from: buffer.baseAddress!, byteCount: buffer.count)
                    }
                    return buffer.count
                case .vfioDevice(let fileID)?:
                    guard offset >= 0, buffer.count > 0 else { throw .invalidArgument }
                    return unsafe try state.deviceWrite(fileID, from: buffer, offset: offset)
                case .regularFile(let path, _)?:
                    var contents = state.configuration.files[path] ?? []
                    let end = Int(offset) + buffer.count
                    if contents.count < end { contents += [UInt8](repeating: 0, count: end - contents.count) }
                    unsafe contents.replaceSubrange(Int(offset)..<end, with: buffer)
                    state.configuration.files[path] = contents
                    return buffer.count
                case nil: throw .badFileDescriptor
                default: throw .illegalSeek
                }
            }
        }
    }

    public func eventfd(initialValue: UInt32, flags: Int32) throws(Errno) -> Int32 {
        unsafe try state.withLock { (state) throws(Errno) -> Int32 in
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
    /// `POLLNVAL`, which `LinuxSystem` reports the same way). The wait really blocks, until
    /// an interrupt, a write or an ioctl makes a counter non-zero, or the timeout passes.
    public func waitReadable(_ fds: [Int32], timeoutNanoseconds: UInt64?) throws(Errno) -> [Int] {
        unsafe try state.withLock { (state) throws(Errno) in
            try state.run("poll") { (state) throws(Errno) in
                for fd in fds {
                    switch state.descriptors[fd] {
                    case .eventCounter?, .regularFile?, .eventQueue?: break
                    case nil: throw .badFileDescriptor
                    default: throw .invalidArgument  // not modelled for other kinds: refuse loudly
                    }
                }
            }
        }
        return unsafe state.wait(timeoutNanoseconds: timeoutNanoseconds) { state -> [Int]? in
            let ready = fds.indices.filter { index in
                switch state.descriptors[fds[index]] {
                case .eventCounter(let value)?: value > 0
                case .regularFile?: true
                case .eventQueue(let contextID, let objectID)?: state.eventQueueReadable(contextID, objectID)
                default: true  // closed meanwhile: poll reports it (POLLNVAL) rather than sleeping on
                }
            }
            return ready.isEmpty ? nil : ready
        } ?? []
    }
}
