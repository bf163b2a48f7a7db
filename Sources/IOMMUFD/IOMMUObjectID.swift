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

public typealias IOASID = IOMMUObjectID<IOASObject>
public typealias HWPTID = IOMMUObjectID<HWPTObject>
public typealias DeviceID = IOMMUObjectID<DeviceObject>
public typealias FaultID = IOMMUObjectID<FaultObject>
public typealias VIOMMUID = IOMMUObjectID<VIOMMUObject>
public typealias VDeviceID = IOMMUObjectID<VDeviceObject>
public typealias VEventQueueID = IOMMUObjectID<VEventQueueObject>
public typealias HWQueueID = IOMMUObjectID<HWQueueObject>
public typealias SelftestID = IOMMUObjectID<SelftestObject>
