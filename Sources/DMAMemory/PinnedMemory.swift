public import Logging
public import IOMMUFD
import CIOMMUFD
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Memory for DMA: one `mmap` of a backing store, placed on a NUMA node and faulted in.
///
/// Exactly one owner: `deinit` unmaps it and closes the backing file. A ``DMARegion``
/// holds one and removes its IOMMU mapping first, so the pages are never unmapped from
/// the process while a device can still reach them.
// Sendable: one owner (not copyable), so handing it to another thread hands over the only
// handle; the raw address is what the compiler cannot check.
// @safe: it owns its mapping; reaching the memory goes through `address`, an unsafe pointer
// type that is flagged where it is dereferenced.
@safe
public struct PinnedMemory: ~Copyable, @unchecked Sendable {
    /// The first byte.
    public let address: UnsafeMutableRawPointer
    /// The mapped length: the request rounded up to whole pages of ``pageSize``.
    public let length: Int
    /// The store the memory came from (after any fallback).
    public let store: BackingStore
    /// Every fallback taken before ``store`` succeeded, in order (empty: the first choice).
    public let fallbacks: [BackingFallback]
    /// Where the pages are, checked after they were faulted in.
    public let placement: NUMAReport
    /// The backing file (memfd or hugetlbfs), or `nil` for anonymous memory.
    public var fileDescriptor: FileDescriptor? { fd.map(FileDescriptor.init(rawValue:)) }
    /// The raw backing descriptor, for the seam's calls.
    let fd: Int32?
    let system: any SystemInterface
    /// Where a failed unmap or close at the end is logged.
    let logger: Logger

    /// The page size the memory is made of.
    public var pageSize: PageSize { store.pageSize }

    /// The memory as raw bytes.
    public var bytes: UnsafeMutableRawBufferPointer { unsafe UnsafeMutableRawBufferPointer(start: address, count: length) }

    /// Allocates at least `length` bytes: tries the stores of `backing` in order (a missing
    /// hugepage pool, mount or THP moves on to the next and is reported), places the pages
    /// with `placement`, faults them all in with `MADV_POPULATE_WRITE` (calling `progress`
    /// with bytes done and total after each chunk), and checks where they landed.
    ///
    /// Nothing is left behind on failure: the mapping is removed and the file closed.
    ///
    /// - Throws: ``DMAMemoryError``: the last store's error when every store failed, or the
    ///   first error that no other store can help with.
    public init(
        length: Int, backing: BackingPolicy, placement: NUMAPlacement = .anyNode,
        system: any SystemInterface, logger: Logger = IOMMUFD.silentLogger, progress: ((_ done: Int, _ total: Int) -> Void)? = nil
    ) throws(DMAMemoryError) {
        precondition(length > 0, "a region has at least one byte")
        var fallbacks: [BackingFallback] = []
        for (index, store) in backing.stores.enumerated() {
            do throws(DMAMemoryError) {
                let made = unsafe try Self.make(store, length: length, system: system)
                do throws(DMAMemoryError) {
                    unsafe try NUMAPolicy.apply(placement, address: made.address, length: made.length, system: system)
                    unsafe try Self.prefault(made.address, length: made.length, store: store, system: system, progress: progress)
                    let report = unsafe try NUMAPolicy.verify(placement, address: made.address, length: made.length,
                                                       pageSize: store.pageSize.bytes, system: system)
                    unsafe self.address = unsafe made.address
                    self.length = unsafe made.length
                    self.store = store
                    self.fallbacks = fallbacks
                    self.placement = report
                    self.fd = unsafe made.fd
                    self.system = system
                    self.logger = logger
                    return
                } catch {
                    unsafe Self.discard(address: made.address, length: made.length, fd: made.fd, system: system, logger: logger)
                    throw error
                }
            } catch {
                guard error.isMissingBackingResource, index + 1 < backing.stores.count else { throw error }
                let fallback = BackingFallback(from: store, to: backing.stores[index + 1], reason: error)
                backing.onFallback(fallback)
                fallbacks.append(fallback)
            }
        }
        preconditionFailure("unreachable: the last store either succeeds or throws")
    }

    deinit {
        unsafe Self.discard(address: address, length: length, fd: fd, system: system, logger: logger)
    }

    /// Unmaps and closes, logging (at debug level) what fails: nothing else can be done about
    /// it at this point.
    static func discard(address: UnsafeMutableRawPointer, length: Int, fd: Int32?, system: any SystemInterface, logger: Logger) {
        do { unsafe try system.munmap(address, length: length) } catch {
            logger.debug("unmapping pinned memory failed", metadata: ["length": "\(length)", "error": "\(error)"])
        }
        if let fd {
            do { try system.close(fd) } catch {
                logger.debug("closing the backing file failed", metadata: ["fd": "\(fd)", "error": "\(error)"])
            }
        }
    }

    /// Makes the mapping of one store (no placement, not faulted in).
    static func make(_ store: BackingStore, length: Int, system: any SystemInterface) throws(DMAMemoryError)
        -> (address: UnsafeMutableRawPointer, length: Int, fd: Int32?) {
        let size = store.pageSize
        let rounded = size.roundUp(length)
        if size != .base {
            guard let pool = HugePagePool.read(size, system: system) else { throw .hugePageSizeUnsupported(size) }
            let needed = rounded / size.bytes
            guard pool.available >= needed else { throw .hugePagesUnavailable(size, needed: needed, available: pool.available) }
        }
        if case .anonymous(let thp) = store {
            let address: UnsafeMutableRawPointer
            do {
                unsafe address = unsafe try system.mmap(address: nil, length: rounded, protection: PROT_READ | PROT_WRITE,
                                          flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
            } catch { throw .system(.mmap, error) }
            if thp {
                do { unsafe try system.madvise(address, length: rounded, advice: CIOMMUFD_MADV_HUGEPAGE) } catch {
                    unsafe try? system.munmap(address, length: rounded)
                    throw error == .invalidArgument ? .transparentHugePagesUnavailable : .system(.madvise, error)
                }
            }
            return unsafe (address, rounded, nil)
        }
        let fd: Int32
        if case .hugetlbfs(_, let mountPoint) = store {
            let mounts = HugetlbfsMount.all(system: system).filter { $0.pageSize == size }
            guard let mount = mountPoint.flatMap({ point in mounts.first { $0.path == point } }) ?? (mountPoint == nil ? mounts.first : nil) else {
                throw .noHugetlbfsMount(size, mountPoint: mountPoint)
            }
            fd = try openUnlinkedFile(in: mount.path, system: system)
        } else {
            do { fd = try system.memfdCreate("swift-iommufd-dma", flags: size.memfdFlags) } catch {
                throw error == .invalidArgument && size != .base ? .hugePageSizeUnsupported(size) : .system(.memfdCreate, error)
            }
        }
        do {
            try system.ftruncate(fd, length: Int64(rounded))
        } catch {
            try? system.close(fd)
            throw .system(.ftruncate, error)
        }
        do {
            let address = unsafe try system.mmap(address: nil, length: rounded, protection: PROT_READ | PROT_WRITE,
                                          flags: MAP_SHARED, fd: fd, offset: 0)
            return unsafe (address, rounded, fd)
        } catch {
            try? system.close(fd)
            // A shared hugetlb mapping reserves its pages at mmap: ENOMEM means the pool ran short meanwhile.
            if error == .noMemory && size != .base {
                throw hugePagesShort(size, length: rounded, system: system)
            }
            throw .system(.mmap, error)
        }
    }

    /// The error for a hugepage pool that ran short after the up-front check (ENOMEM at mmap or at fault-in).
    static func hugePagesShort(_ size: PageSize, length: Int, system: any SystemInterface) -> DMAMemoryError {
        .hugePagesUnavailable(size, needed: length / size.bytes, available: HugePagePool.read(size, system: system)?.available ?? 0)
    }

    /// Creates a file with a fresh name under a hugetlbfs mount and unlinks it at once, so
    /// nothing is left on the mount when the process dies.
    static func openUnlinkedFile(in directory: String, system: any SystemInterface) throws(DMAMemoryError) -> Int32 {
        for attempt in 0..<16 {
            let path = "\(directory)/swift-iommufd-\(system.processID())-\(HugetlbfsFileNames.counter.next())-\(attempt)"
            do {
                let fd = try system.open(path, flags: O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode: 0o600)
                do { try system.removeFile(path) } catch {
                    try? system.close(fd)
                    throw DMAMemoryError.system(.open, error)
                }
                return fd
            } catch let error as Errno where error == .fileExists {
                continue
            } catch let error as Errno {
                throw .system(.open, error)
            } catch let error as DMAMemoryError {
                throw error
            } catch {
                preconditionFailure("unexpected \(error)")
            }
        }
        throw .system(.open, .fileExists)
    }

    /// The chunk `MADV_POPULATE_WRITE` is given at a time, so progress can be reported.
    static let prefaultChunk = 64 << 20

    /// Faults every page in writable, chunk by chunk. On kernels before 5.14 (`EINVAL`)
    /// each page is touched instead.
    static func prefault(_ address: UnsafeMutableRawPointer, length: Int, store: BackingStore, system: any SystemInterface,
                         progress: ((Int, Int) -> Void)?) throws(DMAMemoryError) {
        let chunk = max(prefaultChunk, store.pageSize.bytes)
        var done = 0
        while done < length {
            let count = min(chunk, length - done)
            do {
                unsafe try system.madvise(address + done, length: count, advice: CIOMMUFD_MADV_POPULATE_WRITE)
            } catch where error == .invalidArgument {
                let page = store.pageSize.bytes
                for offset in stride(from: done, to: done + count, by: page) {
                    unsafe (address + offset).storeBytes(of: (address + offset).load(as: UInt8.self), as: UInt8.self)
                }
            } catch {
                if error == .noMemory && store.pageSize != .base { throw hugePagesShort(store.pageSize, length: length, system: system) }
                throw .prefaultFailed(error, populated: done, length: length)
            }
            done += count
            progress?(done, length)
        }
    }
}

/// Distinct names for hugetlbfs files within the process.
enum HugetlbfsFileNames {
    static let counter = AtomicCounter()
}
