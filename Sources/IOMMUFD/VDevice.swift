import CIOMMUFD
import Logging
import Synchronization

/// A device's identity inside a guest (`IOMMU_VDEVICE_ALLOC`): the virtual id the guest's
/// IOMMU knows it by (an SMMUv3 stream id, a VT-d source id), on one ``VIOMMU``. The
/// vIOMMU routes the guest's invalidations and events for that id to this device, and a
/// device attaches to a nested HWPT of a vIOMMU only once it has a vDEVICE there. A device
/// has at most one vDEVICE; it keeps the vIOMMU alive and is destroyed, best effort, when
/// the last reference goes. If the device is unbound first, the kernel removes the vDEVICE
/// itself and its id stays taken until the iommufd is closed (destroying it is `ENOENT`).
public final class VDevice: Sendable {
    /// The vIOMMU it belongs to.
    public let viommu: VIOMMU
    /// The kernel's id.
    public let id: VDeviceID
    /// The device.
    public let device: DeviceID
    /// The id the guest knows the device by.
    public let virtualID: UInt64
    private let destroyed = Atomic<Bool>(false)

    init(viommu: VIOMMU, id: VDeviceID, device: DeviceID, virtualID: UInt64) {
        self.viommu = viommu
        self.id = id
        self.device = device
        self.virtualID = virtualID
        viommu.parent.ioas.iommufd.logger.debug("vDEVICE allocated", metadata: ["vdevice.id": "\(id.rawValue)", "virt_id": "\(virtualID)"])
    }

    deinit {
        viommu.parent.ioas.iommufd.destroyFromDeinit(id, unless: destroyed)
    }

    /// Destroys the vDEVICE now and reports a failure.
    ///
    /// - Throws: `ENOENT` when the kernel removed it already (its device was unbound), or
    ///   when this handle was destroyed already.
    public func destroy(fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        try viommu.parent.ioas.iommufd.destroyOnce(id, claiming: destroyed, fileID: fileID, line: line)
    }
}

extension VIOMMU {
    /// Gives `device` the virtual id `virtualID` on this vIOMMU (`IOMMU_VDEVICE_ALLOC`).
    ///
    /// - Throws: `EEXIST` when the device has a vDEVICE already (on any vIOMMU) or the
    ///   virtual id is taken on this one, `EINVAL` for a device behind another IOMMU,
    ///   `ENOENT` for an unknown device.
    public func allocateVDevice(for device: DeviceID, virtualID: UInt64,
                                fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> VDevice {
        let iommufd = parent.ioas.iommufd
        let raw = try IOMMUFDIOCTL.vdeviceAlloc(iommufd.seam, iommufd.fd, viommu: id.rawValue, device: device.rawValue, virtualID: virtualID,
                                                fileID: fileID, line: line)
        return VDevice(viommu: self, id: VDeviceID(rawValue: raw), device: device, virtualID: virtualID)
    }
}
