import SystemPackage

extension MockKernel {
    /// What the modelled machine looks like.
    public struct Configuration: Sendable {
        /// How `/dev/iommu` answers `open`.
        public enum DeviceNode: Sendable {
            /// Present and openable.
            case present
            /// Missing: the kernel lacks CONFIG_IOMMUFD (`ENOENT`).
            case absent
            /// Present, but the user may not open it (`EACCES`).
            case permissionDenied
        }

        /// The state of `/dev/iommu`.
        public var iommuDevice: DeviceNode = .present
        /// `RLIMIT_MEMLOCK` in bytes; `nil` is unlimited.
        public var memlockLimit: UInt64? = 64 * 1024 * 1024
        /// What `getpid` answers.
        public var processID: Int32 = 4242
        /// The hard `RLIMIT_MEMLOCK` in bytes; `nil` is unlimited.
        public var memlockMaximum: UInt64? = 64 * 1024 * 1024
        /// Whether the process holds `CAP_IPC_LOCK` (then pins are not charged).
        public var hasIPCLock = false
        /// Whether the process holds `CAP_SYS_RESOURCE` (needed to change the accounting mode).
        public var hasSysResource = false
        /// Whether the process holds `CAP_SYS_RAWIO` (needed for `IOMMU_IOAS_NOIOMMU_GET_PA`).
        public var hasSysRawIO = false
        /// Whether the kernel was built with `CONFIG_IOMMUFD_TEST` (answers `IOMMU_TEST_CMD`).
        public var selftestEnabled = true
        /// Whether the kernel was built with `CONFIG_IOMMUFD_NOIOMMU` (the no-IOMMU cdev mode;
        /// the VM lane's kernel is): without it `IOMMU_IOAS_NOIOMMU_GET_PA` is `EOPNOTSUPP`
        /// (iommufd_private.h:360-367).
        public var noIOMMUEnabled = true
        /// The iommufd commands the modelled kernel implements (0x80...0x95 by default).
        public var supportedCommands: ClosedRange<UInt32> = 0x80...0x95
        /// Files visible to `open`/`readFile`/`readLink`/`listDirectory` (a fake sysfs/proc tree).
        public var files: [String: [UInt8]] = [:]
        /// Symbolic links visible to `readLink`.
        public var links: [String: String] = [:]
        /// Directories that exist even with nothing in them (a directory with entries exists
        /// through them): an empty one lists as `[]`, a missing one is `ENOENT`.
        public var directories: Set<String> = []
        /// PCI functions (add them with ``addPCIDevice(_:)``, which also makes their sysfs entries).
        public internal(set) var pciDevices: [PCIDevice] = []
        /// The type1 module's `dma_entry_limit` (the kernel's default is 65535); a container
        /// takes it when its IOMMU is set, so a change reaches only containers set after it.
        public var type1MappingLimit: UInt32 = 65535
        /// Hugepage pools: page size in bytes → pages set aside (`nr_hugepages`). A size
        /// listed with 0 pages exists but is empty; a size not listed is not supported
        /// (`memfd_create(MFD_HUGETLB)` answers `EINVAL`). None by default, like a stock system.
        public var hugePages: [UInt64: Int] = [:]
        /// hugetlbfs mount points → their page size (also listed in `/proc/self/mounts`).
        public var hugetlbfsMounts: [String: UInt64] = [:]
        /// NUMA nodes online (0 ..< numaNodes); `mbind` to another node answers `EINVAL`.
        public var numaNodes = 1

        /// Creates the default machine: `/dev/iommu` present, a 64 MiB memlock limit, no capabilities, the selftest on,
        /// commands 0x80-0x95, no PCI devices or hugepages, one NUMA node.
        public init() {}
    }
}
