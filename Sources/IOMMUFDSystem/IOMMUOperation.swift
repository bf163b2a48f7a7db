import CIOMMUFD

/// Every operation the toolkit performs on the kernel, in the kernel's own spelling: each
/// ioctl of the iommufd and VFIO uAPI, and the system calls around them.
///
/// This file is the one command descriptor table: for an ioctl, ``ioctl`` gives its request
/// number, its family (the kind of descriptor it is issued on), our struct's size, the kernel
/// 7.3 struct's size and the smallest `size`/`argsz` the kernel accepts. Error messages take
/// the name from here, MockKernel its size rules, trace names and dispatch, and the ABI
/// tests their list. Adding an ioctl touches three places: its struct and request number in
/// `CShims/CIOMMUFD`, a case here (with its descriptor), and its function in the catalogue
/// file of its family (`IOMMUFDIOCTL`, `SelftestIOCTL`, `VFIODeviceIOCTL`, `VFIOGroupIOCTL`,
/// `VFIOContainerIOCTL`).
public enum IOMMUOperation: String, Sendable, Hashable, CaseIterable {
    // iommufd (/dev/iommu), _IO(';', 0x80 + n)
    case destroy = "IOMMU_DESTROY"
    case ioasAlloc = "IOMMU_IOAS_ALLOC"
    case ioasAllowIOVAs = "IOMMU_IOAS_ALLOW_IOVAS"
    case ioasCopy = "IOMMU_IOAS_COPY"
    case ioasIOVARanges = "IOMMU_IOAS_IOVA_RANGES"
    case ioasMap = "IOMMU_IOAS_MAP"
    case ioasUnmap = "IOMMU_IOAS_UNMAP"
    case option = "IOMMU_OPTION"
    case vfioIOAS = "IOMMU_VFIO_IOAS"
    case hwptAlloc = "IOMMU_HWPT_ALLOC"
    case getHWInfo = "IOMMU_GET_HW_INFO"
    case hwptSetDirtyTracking = "IOMMU_HWPT_SET_DIRTY_TRACKING"
    case hwptGetDirtyBitmap = "IOMMU_HWPT_GET_DIRTY_BITMAP"
    case hwptInvalidate = "IOMMU_HWPT_INVALIDATE"
    case faultQueueAlloc = "IOMMU_FAULT_QUEUE_ALLOC"
    case ioasMapFile = "IOMMU_IOAS_MAP_FILE"
    case viommuAlloc = "IOMMU_VIOMMU_ALLOC"
    case vdeviceAlloc = "IOMMU_VDEVICE_ALLOC"
    case ioasChangeProcess = "IOMMU_IOAS_CHANGE_PROCESS"
    case veventqAlloc = "IOMMU_VEVENTQ_ALLOC"
    case hwQueueAlloc = "IOMMU_HW_QUEUE_ALLOC"
    case ioasNoIOMMUGetPA = "IOMMU_IOAS_NOIOMMU_GET_PA"
    // the selftest command (CONFIG_IOMMUFD_TEST), _IO(';', 0xa0)
    case testCommand = "IOMMU_TEST_CMD"
    // VFIO container (/dev/vfio/vfio), _IO(';', 100 + n)
    case vfioGetAPIVersion = "VFIO_GET_API_VERSION"
    case vfioCheckExtension = "VFIO_CHECK_EXTENSION"
    case vfioSetIOMMU = "VFIO_SET_IOMMU"
    case vfioIOMMUGetInfo = "VFIO_IOMMU_GET_INFO"
    case vfioIOMMUMapDMA = "VFIO_IOMMU_MAP_DMA"
    case vfioIOMMUUnmapDMA = "VFIO_IOMMU_UNMAP_DMA"
    case vfioIOMMUDirtyPages = "VFIO_IOMMU_DIRTY_PAGES"
    // VFIO group (/dev/vfio/N)
    case vfioGroupGetStatus = "VFIO_GROUP_GET_STATUS"
    case vfioGroupSetContainer = "VFIO_GROUP_SET_CONTAINER"
    case vfioGroupUnsetContainer = "VFIO_GROUP_UNSET_CONTAINER"
    case vfioGroupGetDeviceFD = "VFIO_GROUP_GET_DEVICE_FD"
    // VFIO device (cdev /dev/vfio/devices/vfioN, or a group's device fd)
    case vfioDeviceGetInfo = "VFIO_DEVICE_GET_INFO"
    case vfioDeviceGetRegionInfo = "VFIO_DEVICE_GET_REGION_INFO"
    case vfioDeviceGetIRQInfo = "VFIO_DEVICE_GET_IRQ_INFO"
    case vfioDeviceSetIRQs = "VFIO_DEVICE_SET_IRQS"
    case vfioDeviceReset = "VFIO_DEVICE_RESET"
    case vfioDeviceGetPCIHotResetInfo = "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO"
    case vfioDevicePCIHotReset = "VFIO_DEVICE_PCI_HOT_RESET"
    case vfioDeviceQueryGFXPlane = "VFIO_DEVICE_QUERY_GFX_PLANE"
    case vfioDeviceGetGFXDMABuf = "VFIO_DEVICE_GET_GFX_DMABUF"
    case vfioDeviceIOEventFD = "VFIO_DEVICE_IOEVENTFD"
    case vfioDeviceFeature = "VFIO_DEVICE_FEATURE"
    case vfioDeviceBindIOMMUFD = "VFIO_DEVICE_BIND_IOMMUFD"
    case vfioDeviceAttachIOMMUFDPT = "VFIO_DEVICE_ATTACH_IOMMUFD_PT"
    case vfioDeviceDetachIOMMUFDPT = "VFIO_DEVICE_DETACH_IOMMUFD_PT"
    case vfioMigGetPrecopyInfo = "VFIO_MIG_GET_PRECOPY_INFO"
    // system calls
    case open = "open"
    case close = "close"
    case mmap = "mmap"
    case munmap = "munmap"
    case memfdCreate = "memfd_create"
    case ftruncate = "ftruncate"
    case read = "read"
    case write = "write"
    case pread = "pread"
    case pwrite = "pwrite"
    case readFile = "read (sysfs)"
    case listDirectory = "opendir"
    case readLink = "readlink"
    case eventfd = "eventfd"
    case getrlimit = "getrlimit"
    case madvise = "madvise"
    case mbind = "mbind"
    case movePages = "move_pages"

    /// The kernel's name for the operation, e.g. `IOMMU_IOAS_MAP`.
    public var name: String { rawValue }

    /// The ioctl's descriptor, or `nil` for a system call. The sizes are the Linux 7.3 uAPI's
    /// (`include/uapi/linux/iommufd.h`, `vfio.h`); the minimums are the kernel's
    /// `offsetofend(struct, last field of the first version)` (`iommufd_ioctl_ops` in
    /// `drivers/iommu/iommufd/main.c`, `minsz` in `drivers/vfio`).
    public var ioctl: IOCTLDescriptor? {
        switch self {
        case .destroy: .iommufd(IOMMU_DESTROY, iommu_destroy.self, kernelSize: 8, minimum: 8)
        case .ioasAlloc: .iommufd(IOMMU_IOAS_ALLOC, iommu_ioas_alloc.self, kernelSize: 12, minimum: 12)
        case .ioasAllowIOVAs: .iommufd(IOMMU_IOAS_ALLOW_IOVAS, iommu_ioas_allow_iovas.self, kernelSize: 24, minimum: 24)
        case .ioasCopy: .iommufd(IOMMU_IOAS_COPY, iommu_ioas_copy.self, kernelSize: 40, minimum: 40)
        case .ioasIOVARanges: .iommufd(IOMMU_IOAS_IOVA_RANGES, iommu_ioas_iova_ranges.self, kernelSize: 32, minimum: 32)
        case .ioasMap: .iommufd(IOMMU_IOAS_MAP, iommu_ioas_map.self, kernelSize: 40, minimum: 40)
        case .ioasUnmap: .iommufd(IOMMU_IOAS_UNMAP, iommu_ioas_unmap.self, kernelSize: 24, minimum: 24)
        case .option: .iommufd(IOMMU_OPTION, iommu_option.self, kernelSize: 24, minimum: 24)
        case .vfioIOAS: .iommufd(IOMMU_VFIO_IOAS, iommu_vfio_ioas.self, kernelSize: 12, minimum: 12)
        case .hwptAlloc: .iommufd(IOMMU_HWPT_ALLOC, iommu_hwpt_alloc.self, kernelSize: 48, minimum: 24)
        case .getHWInfo: .iommufd(IOMMU_GET_HW_INFO, iommu_hw_info.self, kernelSize: 40, minimum: 32)
        case .hwptSetDirtyTracking: .iommufd(IOMMU_HWPT_SET_DIRTY_TRACKING, iommu_hwpt_set_dirty_tracking.self, kernelSize: 16, minimum: 16)
        case .hwptGetDirtyBitmap: .iommufd(IOMMU_HWPT_GET_DIRTY_BITMAP, iommu_hwpt_get_dirty_bitmap.self, kernelSize: 48, minimum: 48)
        case .hwptInvalidate: .iommufd(IOMMU_HWPT_INVALIDATE, iommu_hwpt_invalidate.self, kernelSize: 32, minimum: 32)
        case .faultQueueAlloc: .iommufd(IOMMU_FAULT_QUEUE_ALLOC, iommu_fault_alloc.self, kernelSize: 16, minimum: 16)
        case .ioasMapFile: .iommufd(IOMMU_IOAS_MAP_FILE, iommu_ioas_map_file.self, kernelSize: 40, minimum: 40)
        case .viommuAlloc: .iommufd(IOMMU_VIOMMU_ALLOC, iommu_viommu_alloc.self, kernelSize: 40, minimum: 24)
        case .vdeviceAlloc: .iommufd(IOMMU_VDEVICE_ALLOC, iommu_vdevice_alloc.self, kernelSize: 24, minimum: 24)
        case .ioasChangeProcess: .iommufd(IOMMU_IOAS_CHANGE_PROCESS, iommu_ioas_change_process.self, kernelSize: 8, minimum: 8)
        case .veventqAlloc: .iommufd(IOMMU_VEVENTQ_ALLOC, iommu_veventq_alloc.self, kernelSize: 32, minimum: 28)
        case .hwQueueAlloc: .iommufd(IOMMU_HW_QUEUE_ALLOC, iommu_hw_queue_alloc.self, kernelSize: 40, minimum: 40)
        case .ioasNoIOMMUGetPA: .iommufd(IOMMU_IOAS_NOIOMMU_GET_PA, iommu_ioas_noiommu_get_pa.self, kernelSize: 40, minimum: 40)
        case .testCommand: IOCTLDescriptor(.selftest, IOMMU_TEST_CMD, iommu_test_cmd.self, kernelSize: 72, minimum: 68)
        case .vfioGetAPIVersion: IOCTLDescriptor(.vfioContainer, VFIO_GET_API_VERSION)
        case .vfioCheckExtension: IOCTLDescriptor(.vfioContainer, VFIO_CHECK_EXTENSION)
        case .vfioSetIOMMU: IOCTLDescriptor(.vfioContainer, VFIO_SET_IOMMU)
        case .vfioIOMMUGetInfo: IOCTLDescriptor(.vfioContainer, VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info.self, kernelSize: 24, minimum: 16)
        case .vfioIOMMUMapDMA: IOCTLDescriptor(.vfioContainer, VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map.self, kernelSize: 32, minimum: 32)
        case .vfioIOMMUUnmapDMA: IOCTLDescriptor(.vfioContainer, VFIO_IOMMU_UNMAP_DMA, vfio_iommu_type1_dma_unmap.self, kernelSize: 24, minimum: 24)
        case .vfioIOMMUDirtyPages: IOCTLDescriptor(.vfioContainer, VFIO_IOMMU_DIRTY_PAGES, vfio_iommu_type1_dirty_bitmap.self, kernelSize: 8, minimum: 8)
        case .vfioGroupGetStatus: IOCTLDescriptor(.vfioGroup, VFIO_GROUP_GET_STATUS, vfio_group_status.self, kernelSize: 8, minimum: 8)
        case .vfioGroupSetContainer: IOCTLDescriptor(.vfioGroup, VFIO_GROUP_SET_CONTAINER)
        case .vfioGroupUnsetContainer: IOCTLDescriptor(.vfioGroup, VFIO_GROUP_UNSET_CONTAINER)
        case .vfioGroupGetDeviceFD: IOCTLDescriptor(.vfioGroup, VFIO_GROUP_GET_DEVICE_FD)
        case .vfioDeviceGetInfo: IOCTLDescriptor(.vfioDevice, VFIO_DEVICE_GET_INFO, vfio_device_info.self, kernelSize: 24, minimum: 16)
        case .vfioDeviceGetRegionInfo: IOCTLDescriptor(.vfioDevice, VFIO_DEVICE_GET_REGION_INFO, vfio_region_info.self, kernelSize: 32, minimum: 32)
        case .vfioDeviceGetIRQInfo: IOCTLDescriptor(.vfioDevice, VFIO_DEVICE_GET_IRQ_INFO, vfio_irq_info.self, kernelSize: 16, minimum: 16)
        case .vfioDeviceSetIRQs: IOCTLDescriptor(.vfioDevice, VFIO_DEVICE_SET_IRQS, vfio_irq_set.self, kernelSize: 20, minimum: 20)
        case .vfioDeviceReset: IOCTLDescriptor(.vfioDevice, VFIO_DEVICE_RESET)
        case .vfioDeviceGetPCIHotResetInfo: IOCTLDescriptor(.vfioDevice, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, vfio_pci_hot_reset_info.self, kernelSize: 12, minimum: 12)
        case .vfioDevicePCIHotReset: IOCTLDescriptor(.vfioDevice, VFIO_DEVICE_PCI_HOT_RESET, vfio_pci_hot_reset.self, kernelSize: 12, minimum: 12)
        case .vfioDeviceQueryGFXPlane: IOCTLDescriptor(.vfioDevice, VFIO_DEVICE_QUERY_GFX_PLANE)
        case .vfioDeviceGetGFXDMABuf: IOCTLDescriptor(.vfioDevice, VFIO_DEVICE_GET_GFX_DMABUF)
        case .vfioDeviceIOEventFD: IOCTLDescriptor(.vfioDevice, VFIO_DEVICE_IOEVENTFD, vfio_device_ioeventfd.self, kernelSize: 32, minimum: 28)
        case .vfioDeviceFeature: IOCTLDescriptor(.vfioDevice, VFIO_DEVICE_FEATURE, vfio_device_feature.self, kernelSize: 8, minimum: 8)
        case .vfioDeviceBindIOMMUFD: IOCTLDescriptor(.vfioDevice, VFIO_DEVICE_BIND_IOMMUFD, vfio_device_bind_iommufd.self, kernelSize: 24, minimum: 16)
        case .vfioDeviceAttachIOMMUFDPT: IOCTLDescriptor(.vfioDevice, VFIO_DEVICE_ATTACH_IOMMUFD_PT, vfio_device_attach_iommufd_pt.self, kernelSize: 16, minimum: 12)
        case .vfioDeviceDetachIOMMUFDPT: IOCTLDescriptor(.vfioDevice, VFIO_DEVICE_DETACH_IOMMUFD_PT, vfio_device_detach_iommufd_pt.self, kernelSize: 12, minimum: 8)
        case .vfioMigGetPrecopyInfo: IOCTLDescriptor(.vfioDevice, VFIO_MIG_GET_PRECOPY_INFO)
        case .open, .close, .mmap, .munmap, .memfdCreate, .ftruncate, .read, .write, .pread, .pwrite, .readFile,
             .listDirectory, .readLink, .eventfd, .getrlimit, .madvise, .mbind, .movePages:
            nil
        }
    }

    /// The iommufd commands 0x80-0x95, in number order (what ``IOMMUFD/supportedCommands()`` probes).
    public static let iommufdCommands: [IOMMUOperation] = allCases.filter { $0.ioctl?.family == .iommufd }

    /// The ioctl that `request` means on a descriptor of `family` (VFIO reuses numbers: 12-14
    /// are hot-reset commands on a device and type1 commands on a container), or `nil`.
    public init?(request: UInt, family: IOCTLDescriptor.Family) {
        guard let operation = Self.byRequest[IOCTLKey(request: request, family: family)] else { return nil }
        self = operation
    }

    private struct IOCTLKey: Hashable {
        var request: UInt
        var family: IOCTLDescriptor.Family
    }

    private static let byRequest: [IOCTLKey: IOMMUOperation] = Dictionary(uniqueKeysWithValues: allCases.compactMap { operation in
        operation.ioctl.map { (IOCTLKey(request: $0.request, family: $0.family), operation) }
    })
}

/// How the kernel sees one ioctl: its request number, the kind of descriptor it is issued on,
/// and the sizes of its argument.
public struct IOCTLDescriptor: Sendable, Hashable {
    /// The kind of descriptor an ioctl is issued on.
    public enum Family: Sendable, Hashable {
        /// `/dev/iommu`.
        case iommufd
        /// `/dev/iommu` with `CONFIG_IOMMUFD_TEST` (`IOMMU_TEST_CMD`).
        case selftest
        /// The legacy container `/dev/vfio/vfio`.
        case vfioContainer
        /// A legacy group `/dev/vfio/N`.
        case vfioGroup
        /// A VFIO device: a cdev `/dev/vfio/devices/vfioN` or a group's device descriptor.
        case vfioDevice
    }

    /// The family.
    public let family: Family
    /// The request number (`_IO(';', nr)`: iommufd and VFIO carry no size or direction bits).
    public let request: UInt
    /// `MemoryLayout` size of our struct for it (0 for an ioctl whose argument is not a struct).
    public let structSize: Int
    /// The kernel 7.3 struct's `sizeof` (0 when the argument is not a struct).
    public let kernelSize: Int
    /// The smallest `size` (iommufd) or `argsz` (VFIO) the kernel accepts (0 when there is none).
    public let minimumSize: Int

    init<Command>(_ family: Family, _ request: UInt, _ type: Command.Type, kernelSize: Int, minimum: Int) {
        self.family = family
        self.request = request
        self.structSize = MemoryLayout<Command>.size
        self.kernelSize = kernelSize
        self.minimumSize = minimum
    }

    init(_ family: Family, _ request: UInt) {
        self.family = family
        self.request = request
        self.structSize = 0
        self.kernelSize = 0
        self.minimumSize = 0
    }

    static func iommufd<Command>(_ request: UInt, _ type: Command.Type, kernelSize: Int, minimum: Int) -> IOCTLDescriptor {
        IOCTLDescriptor(.iommufd, request, type, kernelSize: kernelSize, minimum: minimum)
    }
}
