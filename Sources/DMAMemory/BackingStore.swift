/// Where the memory of a DMA region comes from.
public enum BackingStore: Sendable, Hashable, CustomStringConvertible {
    /// A memfd with base pages (shmem). Mapped with `IOMMU_IOAS_MAP_FILE`.
    case memfd
    /// A memfd from a hugepage pool (`MFD_HUGETLB`). Mapped with `IOMMU_IOAS_MAP_FILE`.
    case hugetlbMemfd(PageSize)
    /// A file on a hugetlbfs mount (`nil`: the first mount of that page size in
    /// `/proc/self/mounts`). The file is unlinked at once. Mapped with `IOMMU_IOAS_MAP_FILE`.
    case hugetlbfs(PageSize, mountPoint: String? = nil)
    /// Anonymous private memory, with `MADV_HUGEPAGE` when `transparentHugePages`.
    /// Mapped by virtual address (`IOMMU_IOAS_MAP`).
    case anonymous(transparentHugePages: Bool)

    /// Whether the memory is a file the IOAS can map by descriptor.
    public var isFile: Bool {
        if case .anonymous = self { return false }
        return true
    }

    /// The page size the memory is made of (anonymous memory is reported as base pages,
    /// even when THP later promotes it).
    public var pageSize: PageSize {
        switch self {
        case .memfd, .anonymous: .base
        case .hugetlbMemfd(let size), .hugetlbfs(let size, _): size
        }
    }

    public var description: String {
        switch self {
        case .memfd: "memfd"
        case .hugetlbMemfd(let size): "memfd (MFD_HUGETLB, \(size))"
        case .hugetlbfs(let size, let mount): "hugetlbfs (\(size)\(mount.map { " at \($0)" } ?? ""))"
        case .anonymous(let thp): thp ? "anonymous (THP hint)" : "anonymous"
        }
    }
}

/// Which backing stores to try, in order, and who hears about a fallback.
///
/// There is no silent downgrade: with one store, a missing resource is an error; with
/// several, each fallback is passed to `onFallback` before the next store is tried, and
/// the region records every fallback it took (``PinnedMemory/fallbacks``).
public struct BackingPolicy: Sendable {
    /// The stores in order of preference.
    public var stores: [BackingStore]
    /// Called once per fallback, before the next store is tried.
    public var onFallback: @Sendable (BackingFallback) -> Void

    /// Creates a policy that tries `stores` in order (at least one) and reports each fallback to `onFallback`.
    public init(stores: [BackingStore], onFallback: @escaping @Sendable (BackingFallback) -> Void) {
        precondition(!stores.isEmpty, "a backing policy needs at least one store")
        self.stores = stores
        self.onFallback = onFallback
    }

    /// Exactly this store; a missing resource is an error.
    public static func exactly(_ store: BackingStore) -> BackingPolicy {
        BackingPolicy(stores: [store], onFallback: { _ in })
    }

    /// Tries `stores` in order, reporting every fallback to `onFallback`.
    public static func preferring(_ stores: [BackingStore], onFallback: @escaping @Sendable (BackingFallback) -> Void) -> BackingPolicy {
        BackingPolicy(stores: stores, onFallback: onFallback)
    }
}

/// A store that could not be used, and the one tried next.
public struct BackingFallback: Sendable, CustomStringConvertible {
    /// The store that failed.
    public var from: BackingStore
    /// The store tried next.
    public var to: BackingStore
    /// Why `from` failed.
    public var reason: DMAMemoryError

    public var description: String { "falling back from \(from) to \(to): \(reason)" }
}
