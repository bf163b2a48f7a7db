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
    /// `IOMMU_DESTROY`: destroys any iommufd object (IOAS, HWPT, fault queue, vIOMMU...) by its ID.
    case destroy = "IOMMU_DESTROY"
    /// `IOMMU_IOAS_ALLOC`: allocates a new, empty I/O address space and returns its ID.
    case ioasAlloc = "IOMMU_IOAS_ALLOC"
    /// `IOMMU_IOAS_ALLOW_IOVAS`: keeps IOVA ranges usable in an IOAS; attachments that would narrow them fail.
    case ioasAllowIOVAs = "IOMMU_IOAS_ALLOW_IOVAS"
    /// `IOMMU_IOAS_COPY`: maps pages already pinned in one IOAS into another, without pinning them again.
    case ioasCopy = "IOMMU_IOAS_COPY"
    /// `IOMMU_IOAS_IOVA_RANGES`: lists the IOVA ranges usable in an IOAS and its IOVA alignment.
    case ioasIOVARanges = "IOMMU_IOAS_IOVA_RANGES"
    /// `IOMMU_IOAS_MAP`: maps user memory into an IOAS, at a fixed IOVA or one the kernel picks.
    case ioasMap = "IOMMU_IOAS_MAP"
    /// `IOMMU_IOAS_UNMAP`: unmaps an IOVA range of an IOAS (0/`UINT64_MAX`: all) and reports the bytes unmapped.
    case ioasUnmap = "IOMMU_IOAS_UNMAP"
    /// `IOMMU_OPTION`: sets or gets a global or per-object option (`RLIMIT_MODE`, `HUGE_PAGES`).
    case option = "IOMMU_OPTION"
    /// `IOMMU_VFIO_IOAS`: gets, sets or clears the IOAS the VFIO container compatibility layer uses.
    case vfioIOAS = "IOMMU_VFIO_IOAS"
    /// `IOMMU_HWPT_ALLOC`: allocates a hardware page table for a device on an IOAS, or nested on a parent.
    case hwptAlloc = "IOMMU_HWPT_ALLOC"
    /// `IOMMU_GET_HW_INFO`: reports the IOMMU type, capabilities, PASID width and vendor data of a bound device.
    case getHWInfo = "IOMMU_GET_HW_INFO"
    /// `IOMMU_HWPT_SET_DIRTY_TRACKING`: starts or stops dirty tracking on a HWPT.
    case hwptSetDirtyTracking = "IOMMU_HWPT_SET_DIRTY_TRACKING"
    /// `IOMMU_HWPT_GET_DIRTY_BITMAP`: copies (and clears) the dirty bits of an IOVA range into a user bitmap.
    case hwptGetDirtyBitmap = "IOMMU_HWPT_GET_DIRTY_BITMAP"
    /// `IOMMU_HWPT_INVALIDATE`: sends driver-specific cache invalidation requests for a nested HWPT or a vIOMMU.
    case hwptInvalidate = "IOMMU_HWPT_INVALIDATE"
    /// `IOMMU_FAULT_QUEUE_ALLOC`: allocates a fault queue, a descriptor that delivers I/O page faults and takes responses.
    case faultQueueAlloc = "IOMMU_FAULT_QUEUE_ALLOC"
    /// `IOMMU_IOAS_MAP_FILE`: maps a range of a file (memfd, dma-buf) into an IOAS.
    case ioasMapFile = "IOMMU_IOAS_MAP_FILE"
    /// `IOMMU_VIOMMU_ALLOC`: allocates a virtual IOMMU on a nesting parent HWPT for a device's physical IOMMU.
    case viommuAlloc = "IOMMU_VIOMMU_ALLOC"
    /// `IOMMU_VDEVICE_ALLOC`: allocates a virtual device: a bound device's virtual ID (e.g. vSID) in a vIOMMU.
    case vdeviceAlloc = "IOMMU_VDEVICE_ALLOC"
    /// `IOMMU_IOAS_CHANGE_PROCESS`: moves the pinned-memory accounting of every file mapping to the calling process.
    case ioasChangeProcess = "IOMMU_IOAS_CHANGE_PROCESS"
    /// `IOMMU_VEVENTQ_ALLOC`: allocates a vEVENTQ, a descriptor that delivers a vIOMMU's hardware events.
    case veventqAlloc = "IOMMU_VEVENTQ_ALLOC"
    /// `IOMMU_HW_QUEUE_ALLOC`: allocates a hardware-accelerated queue of a vIOMMU (e.g. Tegra241 CMDQV).
    case hwQueueAlloc = "IOMMU_HW_QUEUE_ALLOC"
    /// `IOMMU_IOAS_NOIOMMU_GET_PA`: gives the physical address behind an IOVA (no-IOMMU mode only).
    case ioasNoIOMMUGetPA = "IOMMU_IOAS_NOIOMMU_GET_PA"
    // the selftest command (CONFIG_IOMMUFD_TEST), _IO(';', 0xa0)
    /// `IOMMU_TEST_CMD`: the iommufd selftest multiplexer (`CONFIG_IOMMUFD_TEST`): mock domains, fault injection.
    case testCommand = "IOMMU_TEST_CMD"
    // VFIO container (/dev/vfio/vfio), _IO(';', 100 + n)
    /// `VFIO_GET_API_VERSION`: returns the container's `VFIO_API_VERSION` (0).
    case vfioGetAPIVersion = "VFIO_GET_API_VERSION"
    /// `VFIO_CHECK_EXTENSION`: returns a positive value if the container supports an extension or IOMMU model.
    case vfioCheckExtension = "VFIO_CHECK_EXTENSION"
    /// `VFIO_SET_IOMMU`: sets the IOMMU model (e.g. `VFIO_TYPE1v2_IOMMU`) of a container that holds a group.
    case vfioSetIOMMU = "VFIO_SET_IOMMU"
    /// `VFIO_IOMMU_GET_INFO`: reports the type1 IOMMU's page sizes and capabilities (IOVA ranges, DMA limit).
    case vfioIOMMUGetInfo = "VFIO_IOMMU_GET_INFO"
    /// `VFIO_IOMMU_MAP_DMA`: maps process memory at an IOVA in the container's type1 IOMMU.
    case vfioIOMMUMapDMA = "VFIO_IOMMU_MAP_DMA"
    /// `VFIO_IOMMU_UNMAP_DMA`: unmaps an IOVA range of the container and reports the bytes unmapped.
    case vfioIOMMUUnmapDMA = "VFIO_IOMMU_UNMAP_DMA"
    /// `VFIO_IOMMU_DIRTY_PAGES`: starts, stops or reads the type1 IOMMU's dirty-page tracking.
    case vfioIOMMUDirtyPages = "VFIO_IOMMU_DIRTY_PAGES"
    // VFIO group (/dev/vfio/N)
    /// `VFIO_GROUP_GET_STATUS`: reports whether a group is viable and whether it is in a container.
    case vfioGroupGetStatus = "VFIO_GROUP_GET_STATUS"
    /// `VFIO_GROUP_SET_CONTAINER`: adds a group to a container.
    case vfioGroupSetContainer = "VFIO_GROUP_SET_CONTAINER"
    /// `VFIO_GROUP_UNSET_CONTAINER`: removes a group from its container.
    case vfioGroupUnsetContainer = "VFIO_GROUP_UNSET_CONTAINER"
    /// `VFIO_GROUP_GET_DEVICE_FD`: opens a device of the group by name (PCI address, optional VF token).
    case vfioGroupGetDeviceFD = "VFIO_GROUP_GET_DEVICE_FD"
    // VFIO device (cdev /dev/vfio/devices/vfioN, or a group's device fd)
    /// `VFIO_DEVICE_GET_INFO`: reports a device's flags (PCI, reset) and its numbers of regions and IRQ indexes.
    case vfioDeviceGetInfo = "VFIO_DEVICE_GET_INFO"
    /// `VFIO_DEVICE_GET_REGION_INFO`: reports a region's size, offset, flags and capabilities (BAR, config space).
    case vfioDeviceGetRegionInfo = "VFIO_DEVICE_GET_REGION_INFO"
    /// `VFIO_DEVICE_GET_IRQ_INFO`: reports the vector count and flags of an IRQ index (INTx, MSI, MSI-X...).
    case vfioDeviceGetIRQInfo = "VFIO_DEVICE_GET_IRQ_INFO"
    /// `VFIO_DEVICE_SET_IRQS`: triggers, masks, unmasks or wires eventfds to the vectors of an IRQ index.
    case vfioDeviceSetIRQs = "VFIO_DEVICE_SET_IRQS"
    /// `VFIO_DEVICE_RESET`: resets a device that reports `VFIO_DEVICE_FLAGS_RESET` (FLR or another method).
    case vfioDeviceReset = "VFIO_DEVICE_RESET"
    /// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`: lists the devices a bus or slot reset of this device also resets.
    case vfioDeviceGetPCIHotResetInfo = "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO"
    /// `VFIO_DEVICE_PCI_HOT_RESET`: resets the bus or slot, given proof of owning every affected device.
    case vfioDevicePCIHotReset = "VFIO_DEVICE_PCI_HOT_RESET"
    /// `VFIO_DEVICE_QUERY_GFX_PLANE`: describes a mediated GPU's display plane.
    case vfioDeviceQueryGFXPlane = "VFIO_DEVICE_QUERY_GFX_PLANE"
    /// `VFIO_DEVICE_GET_GFX_DMABUF`: returns a dma-buf descriptor for a mediated GPU's display plane.
    case vfioDeviceGetGFXDMABuf = "VFIO_DEVICE_GET_GFX_DMABUF"
    /// `VFIO_DEVICE_IOEVENTFD`: makes the kernel write a value to a region offset when an eventfd is signalled.
    case vfioDeviceIOEventFD = "VFIO_DEVICE_IOEVENTFD"
    /// `VFIO_DEVICE_FEATURE`: gets, sets or probes a device feature (migration, low power, dma-buf export).
    case vfioDeviceFeature = "VFIO_DEVICE_FEATURE"
    /// `VFIO_DEVICE_BIND_IOMMUFD`: binds a device cdev to an iommufd and returns its device ID.
    case vfioDeviceBindIOMMUFD = "VFIO_DEVICE_BIND_IOMMUFD"
    /// `VFIO_DEVICE_ATTACH_IOMMUFD_PT`: attaches a bound device, or one PASID of it, to an IOAS or HWPT.
    case vfioDeviceAttachIOMMUFDPT = "VFIO_DEVICE_ATTACH_IOMMUFD_PT"
    /// `VFIO_DEVICE_DETACH_IOMMUFD_PT`: detaches a bound device, or one PASID of it, from its IOAS or HWPT.
    case vfioDeviceDetachIOMMUFDPT = "VFIO_DEVICE_DETACH_IOMMUFD_PT"
    /// `VFIO_MIG_GET_PRECOPY_INFO`: reports the initial and dirty bytes a migration data descriptor still holds.
    case vfioMigGetPrecopyInfo = "VFIO_MIG_GET_PRECOPY_INFO"
    // system calls
    /// `open(2)`: opens a device node or a sysfs file (always with `O_CLOEXEC`).
    case open = "open"
    /// `close(2)`: releases a descriptor; never retried on `EINTR`.
    case close = "close"
    /// `mmap(2)`: maps anonymous, hugetlbfs or memfd memory, or a device region such as a BAR.
    case mmap = "mmap"
    /// `munmap(2)`: unmaps a range `mmap` mapped.
    case munmap = "munmap"
    /// `memfd_create(2)`: creates the anonymous file behind memfd-backed DMA memory.
    case memfdCreate = "memfd_create"
    /// `ftruncate(2)`: sets the size of a memfd.
    case ftruncate = "ftruncate"
    /// `read(2)`: reads a descriptor (an interrupt eventfd, a fault queue, a sysfs file).
    case read = "read"
    /// `write(2)`: writes a descriptor (a sysfs attribute, an eventfd, a fault response).
    case write = "write"
    /// `pread(2)`: reads at an offset of a device region, e.g. PCI configuration space.
    case pread = "pread"
    /// `pwrite(2)`: writes at an offset of a device region, e.g. PCI configuration space.
    case pwrite = "pwrite"
    /// A whole-file read (`open`, `read` until end of file, `close`) of a sysfs or procfs file.
    case readFile = "read (sysfs)"
    /// `opendir(3)`/`readdir(3)`: lists a directory, e.g. `/sys/bus/pci/devices`.
    case listDirectory = "opendir"
    /// `readlink(2)`: reads a symbolic link, e.g. a device's `iommu_group` or `driver` in sysfs.
    case readLink = "readlink"
    /// `eventfd(2)`: creates an eventfd for an interrupt vector or an ioeventfd.
    case eventfd = "eventfd"
    /// `getrlimit(2)`: reads the process's `RLIMIT_MEMLOCK`.
    case getrlimit = "getrlimit"
    /// `madvise(2)`: advises on a memory range, e.g. `MADV_HUGEPAGE` for transparent huge pages.
    case madvise = "madvise"
    /// `mbind(2)`: binds a memory range to NUMA nodes.
    case mbind = "mbind"
    /// `move_pages(2)` with no target nodes: reports the NUMA node of each page.
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

    /// The iommufd commands 0x80-0x95, in number order (what `IOMMUFD.supportedCommands()` probes).
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
