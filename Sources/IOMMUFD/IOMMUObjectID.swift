/// A kind of iommufd object, used only as a type tag on ``IOMMUObjectID``.
public protocol IOMMUObjectKind: Sendable {
    /// The kernel's name for objects of this kind, e.g. `IOAS`.
    static var name: String { get }
}

/// Tag for I/O address spaces.
public enum IOASObject: IOMMUObjectKind { public static let name = "IOAS" }
/// Tag for hardware page tables.
public enum HWPTObject: IOMMUObjectKind { public static let name = "HWPT" }
/// Tag for bound devices.
public enum DeviceObject: IOMMUObjectKind { public static let name = "DEVICE" }
/// Tag for fault queues.
public enum FaultObject: IOMMUObjectKind { public static let name = "FAULT" }
/// Tag for virtual IOMMUs.
public enum VIOMMUObject: IOMMUObjectKind { public static let name = "VIOMMU" }
/// Tag for virtual devices.
public enum VDeviceObject: IOMMUObjectKind { public static let name = "VDEVICE" }
/// Tag for virtual event queues.
public enum VEventQueueObject: IOMMUObjectKind { public static let name = "VEVENTQ" }
/// Tag for hardware queues.
public enum HWQueueObject: IOMMUObjectKind { public static let name = "HW_QUEUE" }
/// Tag for objects of the kernel selftest (CONFIG_IOMMUFD_TEST), such as a mock device.
public enum SelftestObject: IOMMUObjectKind { public static let name = "SELFTEST" }

/// The id of one iommufd object, typed by its kind so that passing an IOAS
/// where a HWPT is expected does not compile.
public struct IOMMUObjectID<Kind: IOMMUObjectKind>: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The kernel's 32-bit object id.
    public let rawValue: UInt32

    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public var description: String { "\(Kind.name)#\(rawValue)" }
}

/// The ID of an I/O address space (`out_ioas_id` of `IOMMU_IOAS_ALLOC`).
public typealias IOASID = IOMMUObjectID<IOASObject>
/// The ID of a hardware page table (`out_hwpt_id` of `IOMMU_HWPT_ALLOC`, or the `pt_id` an attach reports).
public typealias HWPTID = IOMMUObjectID<HWPTObject>
/// The ID of a device bound to the iommufd (`out_devid` of `VFIO_DEVICE_BIND_IOMMUFD`).
public typealias DeviceID = IOMMUObjectID<DeviceObject>
/// The ID of a fault queue (`out_fault_id` of `IOMMU_FAULT_QUEUE_ALLOC`).
public typealias FaultID = IOMMUObjectID<FaultObject>
/// The ID of a virtual IOMMU (`out_viommu_id` of `IOMMU_VIOMMU_ALLOC`).
public typealias VIOMMUID = IOMMUObjectID<VIOMMUObject>
/// The ID of a virtual device (`out_vdevice_id` of `IOMMU_VDEVICE_ALLOC`).
public typealias VDeviceID = IOMMUObjectID<VDeviceObject>
/// The ID of a virtual event queue (`out_veventq_id` of `IOMMU_VEVENTQ_ALLOC`).
public typealias VEventQueueID = IOMMUObjectID<VEventQueueObject>
/// The ID of a hardware queue (`out_hw_queue_id` of `IOMMU_HW_QUEUE_ALLOC`).
public typealias HWQueueID = IOMMUObjectID<HWQueueObject>
/// The ID of a selftest object such as a mock device (`IOMMU_TEST_CMD`, `CONFIG_IOMMUFD_TEST`).
public typealias SelftestID = IOMMUObjectID<SelftestObject>
