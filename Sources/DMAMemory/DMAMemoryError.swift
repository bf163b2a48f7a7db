public import IOMMUFD
public import SystemPackage

/// Why the pinned-memory manager could not do what it was asked; every case says how to fix it.
public enum DMAMemoryError: Error, Sendable, CustomStringConvertible {
    /// The kernel has no hugepage pool of this size (`/sys/kernel/mm/hugepages/hugepages-<size>kB` is missing).
    case hugePageSizeUnsupported(PageSize)
    /// The pool has fewer free pages than the region needs.
    case hugePagesUnavailable(PageSize, needed: Int, available: Int)
    /// No hugetlbfs of this page size is mounted (or the given mount point is not one).
    case noHugetlbfsMount(PageSize, mountPoint: String?)
    /// `MADV_HUGEPAGE` was refused: transparent hugepages are disabled (`EINVAL`).
    case transparentHugePagesUnavailable
    /// `RLIMIT_MEMLOCK` is too low to pin the region (and the process lacks `CAP_IPC_LOCK`).
    case memoryLockLimit(needed: UInt64, limit: UInt64, maximum: UInt64?)
    /// The requested NUMA node is not online.
    case numaNodeUnavailable(Int, online: [Int])
    /// The pages did not land where they were placed (strict placement).
    case misplaced(NUMAReport)
    /// Faulting the pages in failed after `populated` of `length` bytes.
    case prefaultFailed(Errno, populated: Int, length: Int)
    /// A system call failed.
    case system(IOMMUOperation, Errno)
    /// The kernel refused to map or unmap the region.
    case kernel(IOMMUError)
    /// No IOVA range is left for the region.
    case iovaSpace(IOVAAllocator.AllocationError)

    /// Whether another backing store may succeed where this one failed (the fallback policy applies).
    public var isMissingBackingResource: Bool {
        switch self {
        case .hugePageSizeUnsupported, .hugePagesUnavailable, .noHugetlbfsMount, .transparentHugePagesUnavailable: true
        default: false
        }
    }

    /// What to do about it.
    public var fix: String {
        switch self {
        case .hugePageSizeUnsupported(let size):
            "this kernel or CPU has no \(size) hugepages; use another page size or a memfd without MFD_HUGETLB"
        case .hugePagesUnavailable(let size, let needed, let available):
            "reserve at least \(needed - available) more: \(HugePagePool.fix(size, pages: needed))"
        case .noHugetlbfsMount(let size, _):
            "mount one: sudo mkdir -p /dev/hugepages\(size == .huge1GiB ? "1G" : "") && sudo mount -t hugetlbfs -o pagesize=\(size == .huge1GiB ? "1G" : "2M") none /dev/hugepages\(size == .huge1GiB ? "1G" : "")"
        case .transparentHugePagesUnavailable:
            "enable THP: echo madvise | sudo tee /sys/kernel/mm/transparent_hugepage/enabled"
        case .memoryLockLimit(let needed, _, let maximum):
            "raise RLIMIT_MEMLOCK to at least \(needed) bytes (ulimit -l \((needed + 1023) / 1024), LimitMEMLOCK= in a systemd unit, or /etc/security/limits.conf)"
                + (maximum.map { $0 < needed ? "; the hard limit \($0) must be raised too (root or CAP_SYS_RESOURCE)" : "" } ?? "")
                + ", or grant CAP_IPC_LOCK"
        case .numaNodeUnavailable(_, let online):
            "use one of the online nodes \(online)"
        case .misplaced:
            "the node is short of free memory (see /sys/devices/system/node/node*/meminfo); free memory there or place the region on another node"
        case .prefaultFailed(let errno, _, _):
            errno == .noMemory ? "the system is out of memory (or hugepages) for this region; make it smaller or free memory" : "see madvise(2) for \(errno)"
        case .system(_, let errno):
            "the call failed with \(errno)"
        case .kernel(let error):
            error.explanation?.fix ?? "see the kernel's answer above"
        case .iovaSpace:
            "free regions, call devicesAreQuiescent() to recycle quarantined IOVAs, or map fewer/smaller regions"
        }
    }

    public var description: String {
        let what: String
        switch self {
        case .hugePageSizeUnsupported(let size): what = "no \(size) hugepage pool"
        case .hugePagesUnavailable(let size, let needed, let available): what = "\(needed) \(size) hugepages needed, \(available) available"
        case .noHugetlbfsMount(let size, let mount): what = mount.map { "\($0) is not a hugetlbfs of \(size) pages" } ?? "no hugetlbfs of \(size) pages is mounted"
        case .transparentHugePagesUnavailable: what = "transparent hugepages are disabled"
        case .memoryLockLimit(let needed, let limit, _): what = "pinning \(needed) bytes exceeds RLIMIT_MEMLOCK (\(limit) bytes)"
        case .numaNodeUnavailable(let node, _): what = "NUMA node \(node) is not online"
        case .misplaced(let report): what = "pages not on the requested node: \(report)"
        case .prefaultFailed(let errno, let populated, let length): what = "MADV_POPULATE_WRITE failed with \(errno) after \(populated) of \(length) bytes"
        case .system(let operation, let errno): what = "\(operation.rawValue) failed: \(errno)"
        case .kernel(let error): return "\(error)"
        case .iovaSpace(let error): what = "\(error)"
        }
        return "\(what) (fix: \(fix))"
    }
}
