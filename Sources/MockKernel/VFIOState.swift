/// The VFIO side of the model: device runtime state, open device descriptors, legacy
/// groups and type1 containers.
struct VFIOState {
    /// Per PCI function (index into `configuration.pciDevices`).
    var devices: [Int: DeviceRuntime] = [:]
    /// Open device descriptors, by a private id.
    var deviceFiles: [Int: DeviceFile] = [:]
    var nextDeviceFileID = 1
    /// Open group nodes: group number to its state.
    var groups: [Int: GroupState] = [:]
    var containers: [Int: ContainerState] = [:]
    var nextContainerID = 1
    /// iommufd contexts whose descriptor was closed while devices were still bound to them.
    var orphanedContexts: Set<Int> = []
    /// Device files whose descriptor was closed while BAR mappings still held them: the
    /// kernel releases the file at the last `fput`, so the device stays bound (and
    /// attached) until the last mapping goes.
    var deviceFilesHeldByMappings: Set<Int> = []
}

/// A function's state while the machine runs.
struct DeviceRuntime {
    var configuration: [UInt8]
    /// Page-aligned storage of each BAR (0 for an absent BAR); freed with the model.
    var barStorage: [UInt]
    /// Which interrupt kind is enabled (VFIO allows one at a time) and the eventfds wired per vector.
    var interruptKind: UInt32?
    var triggers: [Int32] = []
    /// The error and request eventfds, by index: each its own trigger, beside the kind above
    /// (vfio_pci_set_err_trigger, vfio_pci_set_req_trigger).
    var sideTriggers: [UInt32: Int32] = [:]
    /// Device cdev descriptors bound to an iommufd (blocks the legacy group).
    var boundCdevs = 0
}

/// One open device descriptor.
struct DeviceFile {
    var deviceIndex: Int
    /// The legacy group it came from; `nil` for a cdev.
    var group: Int?
    /// cdev: the context and device object it is bound to.
    var boundContext: Int?
    var boundDeviceID: UInt32?
}

/// An open `/dev/vfio/<group>`.
struct GroupState {
    var container: Int?
}

/// An open `/dev/vfio/vfio`.
struct ContainerState {
    var groups: Set<Int> = []
    /// `VFIO_SET_IOMMU` done (type1v2).
    var iommuSet = false
    /// Mappings by IOVA.
    var mappings: [UInt64: Type1Mapping] = [:]
    /// The `dma_entry_limit` taken at `VFIO_SET_IOMMU`: mappings it may hold.
    var entryLimit: UInt32 = 0
}

/// One `VFIO_IOMMU_MAP_DMA`.
struct Type1Mapping {
    var iova: UInt64
    var size: UInt64
    var userAddress: UInt64
    var readable: Bool
    var writable: Bool
    /// Pages charged to RLIMIT_MEMLOCK for it (0 with CAP_IPC_LOCK).
    var chargedPages: UInt64

    var last: UInt64 { iova + size - 1 }
}
