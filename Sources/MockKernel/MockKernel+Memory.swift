import IOMMUFDSystem
public import SystemPackage
import CIOMMUFD
#if canImport(Glibc)
import Glibc
#endif

// Process memory beyond mmap: madvise, NUMA policy and placement, hugepage pools.
extension MockKernel {
    public func madvise(_ address: UnsafeMutableRawPointer, length: Int, advice: Int32) throws(Errno) {
        unsafe try state.withLock { (state) throws(Errno) in
            try state.run("madvise") { (state) throws(Errno) in
                let start = UInt64(UInt(bitPattern: address))
                guard start % pageSize == 0, length >= 0 else { throw .invalidArgument }
                guard length > 0 else { return }
                let range = start...(start + UInt64(length) - 1)
                // mm/madvise.c: a hole in the range is ENOMEM.
                guard state.memoryIsMapped(start: start, length: UInt64(length), writable: false, requiringPages: false) else { throw .noMemory }
                switch advice {
                case CIOMMUFD_MADV_POPULATE_WRITE:
                    // Faulting in writable pages of a read-only mapping fails.
                    guard state.memoryIsMapped(start: start, length: UInt64(length), writable: true) else { throw .badAddress }
                    state.updateAreas(overlapping: range) { $0.populated = true }
                case CIOMMUFD_MADV_POPULATE_READ:
                    state.updateAreas(overlapping: range) { $0.populated = true }
                case CIOMMUFD_MADV_HUGEPAGE, CIOMMUFD_MADV_NOHUGEPAGE:
                    // Only anonymous (and shmem) memory takes the hint; hugetlb files are huge already.
                    let onHugetlb = state.areasOfMemory.contains { area in
                        guard (area.start...area.last).overlaps(range), case .memoryFile(let id, _) = area.backing else { return false }
                        return (state.memoryFiles[id]?.hugePageSize ?? 0) > 0
                    }
                    guard !onHugetlb else { throw .invalidArgument }
                    state.updateAreas(overlapping: range) { $0.transparentHugePages = advice == CIOMMUFD_MADV_HUGEPAGE }
                default:
                    throw .invalidArgument
                }
            }
        }
    }

    public func mbind(_ address: UnsafeMutableRawPointer, length: Int, mode: Int32, nodeMask: UInt64, flags: UInt32) throws(Errno) {
        unsafe try state.withLock { (state) throws(Errno) in
            try state.run("mbind") { (state) throws(Errno) in
                let start = UInt64(UInt(bitPattern: address))
                guard start % pageSize == 0, length > 0 else { throw .invalidArgument }
                guard flags & ~(CIOMMUFD_MPOL_MF_STRICT | CIOMMUFD_MPOL_MF_MOVE) == 0 else { throw .invalidArgument }
                let online: UInt64 = state.configuration.numaNodes >= 64 ? .max : (1 << UInt64(state.configuration.numaNodes)) - 1
                let node: Int32?
                switch mode {
                case CIOMMUFD_MPOL_DEFAULT:
                    guard nodeMask == 0 else { throw .invalidArgument }
                    node = nil
                case CIOMMUFD_MPOL_BIND, CIOMMUFD_MPOL_PREFERRED:
                    // mm/mempolicy.c: an empty mask, or nodes that are not online, is EINVAL.
                    guard nodeMask != 0, nodeMask & ~online == 0 else { throw .invalidArgument }
                    node = Int32(nodeMask.trailingZeroBitCount)
                default:
                    throw .invalidArgument
                }
                guard state.memoryIsMapped(start: start, length: UInt64(length), writable: false, requiringPages: false) else { throw .badAddress }
                let range = start...(start + UInt64(length) - 1)
                // MPOL_MF_STRICT: pages already present elsewhere are an EIO.
                if flags & CIOMMUFD_MPOL_MF_STRICT != 0, flags & CIOMMUFD_MPOL_MF_MOVE == 0 {
                    let misplaced = state.areasOfMemory.contains { ($0.start...$0.last).overlaps(range) && $0.populated && ($0.numaNode ?? 0) != (node ?? 0) }
                    if misplaced { throw .ioError }
                }
                // The model keeps one policy per area: the policy applies to the whole area.
                state.updateAreas(overlapping: range) { $0.numaNode = node }
            }
        }
    }

    public func pageNodes(_ pages: [UnsafeRawPointer]) throws(Errno) -> [Int32] {
        unsafe try state.withLock { (state) throws(Errno) -> [Int32] in
            try state.run("move_pages") { (state) throws(Errno) -> [Int32] in
                unsafe pages.map { page in
                    let address = UInt64(UInt(bitPattern: page))
                    guard let area = state.areasOfMemory.first(where: { $0.start <= address && address <= $0.last }) else { return -EFAULT }
                    return area.populated ? (area.numaNode ?? 0) : -ENOENT
                }
            }
        }
    }

    /// Pages free in the hugepage pool of `pageSize` bytes.
    public func freeHugePages(_ pageSize: UInt64) -> Int {
        unsafe state.withLock { $0.freeHugePages(pageSize) }
    }
}

extension KernelState {
    mutating func updateAreas(overlapping range: ClosedRange<UInt64>, _ change: (inout VirtualMemoryArea) -> Void) {
        for index in areasOfMemory.indices where (areasOfMemory[index].start...areasOfMemory[index].last).overlaps(range) {
            change(&areasOfMemory[index])
        }
    }

    func freeHugePages(_ pageSize: UInt64) -> Int {
        (configuration.hugePages[pageSize] ?? 0) - (hugePagesInUse[pageSize] ?? 0)
    }

    static let hugePageRoot = "/sys/kernel/mm/hugepages"

    /// `hugepages-2048kB/free_hugepages` and friends, from the pools; `/proc/self/mounts`
    /// with the hugetlbfs mounts added.
    func hugePageAttribute(_ path: String) -> [UInt8]? {
        if path == "/proc/self/mounts", !configuration.hugetlbfsMounts.isEmpty {
            var text = String(decoding: configuration.files[path] ?? [], as: UTF8.self)
            for (mount, size) in configuration.hugetlbfsMounts.sorted(by: { $0.key < $1.key }) {
                text += "hugetlbfs \(mount) hugetlbfs rw,relatime,pagesize=\(size >> 20)M 0 0\n"
            }
            return Array(text.utf8)
        }
        guard path.hasPrefix(Self.hugePageRoot + "/hugepages-") else { return nil }
        let parts = path.dropFirst(Self.hugePageRoot.count + 1).split(separator: "/")
        guard parts.count == 2, parts[0].hasSuffix("kB"), let kilobytes = UInt64(parts[0].dropFirst("hugepages-".count).dropLast(2)) else { return nil }
        let size = kilobytes << 10
        guard let total = configuration.hugePages[size] else { return nil }
        let value: Int
        switch parts[1] {
        case "nr_hugepages": value = total
        case "free_hugepages": value = freeHugePages(size)
        case "resv_hugepages", "surplus_hugepages", "nr_overcommit_hugepages": value = 0
        default: return nil
        }
        return Array("\(value)\n".utf8)
    }

    /// The entries of `/sys/kernel/mm/hugepages` and its subdirectories.
    func hugePageDirectory(_ path: String) -> [String] {
        let trimmed = path.hasSuffix("/") ? String(path.dropLast()) : path
        if trimmed == Self.hugePageRoot {
            return configuration.hugePages.keys.map { "hugepages-\($0 >> 10)kB" }
        }
        if trimmed.hasPrefix(Self.hugePageRoot + "/hugepages-"), hugePageAttribute(trimmed + "/nr_hugepages") != nil {
            return ["free_hugepages", "nr_hugepages", "nr_overcommit_hugepages", "resv_hugepages", "surplus_hugepages"]
        }
        return []
    }

    /// `open(O_CREAT)` of a file under a hugetlbfs mount makes a hugetlb memory file.
    mutating func openHugetlbfsFile(_ path: String, flags: Int32) throws(Errno) -> OpenDescriptor? {
        guard let (mount, size) = configuration.hugetlbfsMounts.first(where: { path.hasPrefix($0.key + "/") }) else { return nil }
        _ = mount
        if let id = hugetlbfsFiles[path] {
            guard flags & (O_CREAT | O_EXCL) != O_CREAT | O_EXCL else { throw .fileExists }
            memoryFiles[id]?.references += 1
            return .memoryFile(id: id)
        }
        guard flags & O_CREAT != 0 else { throw .noSuchFileOrDirectory }
        guard configuration.hugePages[size] != nil else { throw .invalidArgument }
        let id = nextMemoryFileID
        nextMemoryFileID += 1
        // One reference for the name, one for the descriptor.
        memoryFiles[id] = MemoryFile(name: path, references: 2, hugePageSize: size)
        hugetlbfsFiles[path] = id
        return .memoryFile(id: id)
    }
}
