public import IOMMUFD

/// One hugepage pool of the running kernel (`/sys/kernel/mm/hugepages/hugepages-<size>kB`).
public struct HugePagePool: Sendable, Hashable {
    /// The pool's page size.
    public var pageSize: PageSize
    /// Pages set aside (`nr_hugepages`).
    public var total: Int
    /// Pages nobody has taken yet (`free_hugepages` minus `resv_hugepages`).
    public var available: Int

    /// Creates a pool description from its page size and its `total` and `available` counts in pages.
    public init(pageSize: PageSize, total: Int, available: Int) {
        self.pageSize = pageSize
        self.total = total
        self.available = available
    }

    static let root = "/sys/kernel/mm/hugepages"

    /// The pool of `pageSize`, or `nil` when the kernel has no such pool (no CPU support, or hugetlb not built).
    public static func read(_ pageSize: PageSize, system: any SystemInterface) -> HugePagePool? {
        let directory = "\(root)/\(pageSize.poolDirectory)"
        func number(_ name: String) -> Int? {
            guard let bytes = try? system.readFile("\(directory)/\(name)") else { return nil }
            return Int(String(decoding: bytes, as: UTF8.self).split(whereSeparator: { $0 == "\n" || $0 == " " }).first ?? "")
        }
        guard let total = number("nr_hugepages"), let free = number("free_hugepages") else { return nil }
        return HugePagePool(pageSize: pageSize, total: total, available: max(0, free - (number("resv_hugepages") ?? 0)))
    }

    /// Every pool the kernel offers.
    public static func all(system: any SystemInterface) -> [HugePagePool] {
        PageSize.allCases.filter { $0 != .base }.compactMap { read($0, system: system) }
    }

    /// The shell command that sets aside `pages` hugepages of this size.
    public static func fix(_ pageSize: PageSize, pages: Int) -> String {
        "echo \(pages) | sudo tee \(root)/\(pageSize.poolDirectory)/nr_hugepages"
            + (pageSize == .huge1GiB ? " (1 GiB pages are best reserved at boot: hugepagesz=1G hugepages=\(pages))" : "")
    }
}

/// A mounted hugetlbfs (from `/proc/self/mounts`).
public struct HugetlbfsMount: Sendable, Hashable {
    /// The mount point (the second field of the `/proc/self/mounts` line).
    public var path: String
    /// The size of the mount's pages (its `pagesize=` option, 2 MiB without one).
    public var pageSize: PageSize

    /// Creates a mount description from its mount point `path` and its `pageSize`.
    public init(path: String, pageSize: PageSize) {
        self.path = path
        self.pageSize = pageSize
    }

    /// The hugetlbfs mounts; a mount without `pagesize=` uses the default size (2 MiB on x86-64).
    public static func all(system: any SystemInterface) -> [HugetlbfsMount] {
        guard let bytes = try? system.readFile("/proc/self/mounts") else { return [] }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count >= 4, fields[2] == "hugetlbfs" else { return nil }
            var size = PageSize.huge2MiB
            for option in fields[3].split(separator: ",") where option.hasPrefix("pagesize=") {
                switch option.dropFirst("pagesize=".count).uppercased() {
                case "1G", "1024M": size = .huge1GiB
                case "2M", "2048K": size = .huge2MiB
                default: return nil
                }
            }
            return HugetlbfsMount(path: String(fields[1]), pageSize: size)
        }
    }
}
