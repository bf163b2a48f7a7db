import Logging
import CIOMMUFD
public import IOMMUFD
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// An IOMMU group opened through the legacy VFIO interface (`/dev/vfio/<number>`) and
/// joined to a ``VFIOContainer``. Device descriptors come from the group
/// (`VFIO_GROUP_GET_DEVICE_FD`); the group keeps its container alive.
public final class VFIOGroup: Sendable {
    /// The IOMMU group number (`/sys/kernel/iommu_groups/<number>`).
    public let number: Int
    /// The group's file descriptor.
    public var fileDescriptor: FileDescriptor { FileDescriptor(rawValue: fd) }
    /// The raw descriptor, for the catalogue's calls.
    let fd: Int32
    /// The container the group joined (kept alive by the group).
    public let container: VFIOContainer
    let system: any SystemInterface
    /// The system as the ioctl catalogue calls it.
    package let seam: IOCTLSeam

    /// The group node's path.
    public var path: String { "/dev/vfio/\(number)" }

    /// Opens `/dev/vfio/<number>`, checks that the group is viable (every device in it
    /// is bound to vfio-pci or to no driver) and joins it to `container`; the first
    /// group of a container switches its type1v2 IOMMU on.
    ///
    /// - Throws: `ENOENT` (no such group, or it has no device bound to vfio-pci),
    ///   `EBUSY` (open elsewhere, or a device of it is bound to an iommufd through its
    ///   cdev), `EPERM` against `VFIO_GROUP_GET_STATUS` when the group is not viable, with
    ///   the fix in `IOMMUError.explanation`.
    public init(number: Int, container: VFIOContainer) throws(IOMMUError) {
        let system = container.system
        let path = "/dev/vfio/\(number)"
        let descriptor: Int32
        do { descriptor = try system.open(path, flags: O_RDWR | O_CLOEXEC, mode: 0) } catch {
            throw IOMMUError(.open, error, IOMMUErrorContext(path: path)).advised()
        }
        self.number = number
        self.fd = descriptor
        self.container = container
        self.system = system
        seam = IOCTLSeam(system)
        do throws(IOMMUError) {
            let flags = try withErrorPath(path) { () throws(IOMMUError) in
                try VFIOGroupIOCTL.getStatus(seam, descriptor, group: UInt32(number), fileID: #fileID, line: #line)
            }
            guard flags & VFIO_GROUP_FLAGS_VIABLE != 0 else {
                throw IOMMUError(.vfioGroupGetStatus, .notPermitted, IOMMUErrorContext(objectID: UInt32(number), path: path)).advised()
            }
            try withErrorPath(path) { () throws(IOMMUError) in
                try VFIOGroupIOCTL.setContainer(seam, descriptor, group: UInt32(number), container: container.fd,
                                                fileID: #fileID, line: #line)
            }
            try container.adopt(groupNumber: number)
        } catch {
            try? system.close(descriptor)
            throw error
        }
    }

    deinit {
        // Closing the group descriptor takes it out of its container.
        do { try system.close(fd) } catch {
            container.logger.debug("closing VFIO group failed", metadata: ["vfio.group": "\(number)", "error": "\(error)"])
        }
        container.release(groupNumber: number)
    }

    /// The IOMMU group of a PCI device, from `/sys/bus/pci/devices/<address>/iommu_group`.
    ///
    /// - Throws: `ENOENT` (against `readlink`) when the device has no IOMMU group: no
    ///   IOMMU is enabled, or the device does not exist.
    public static func number(of address: PCIAddress, system: any SystemInterface) throws(IOMMUError) -> Int {
        let link = address.sysfsPath + "/iommu_group"
        let target: String
        do { target = try system.readLink(link) } catch {
            throw IOMMUError(.readLink, error, IOMMUErrorContext(path: link))
        }
        guard let last = target.split(separator: "/").last, let number = Int(last) else {
            throw IOMMUError(.readLink, .invalidArgument, IOMMUErrorContext(path: link))
        }
        return number
    }

    /// Opens one device of the group (`VFIO_GROUP_GET_DEVICE_FD` with its PCI name, plus
    /// ` vf_token=<uuid>` for an SR-IOV VF whose PF is owned by vfio-pci). The descriptor
    /// is close-on-exec, as every VFIO device descriptor.
    func openDevice(_ address: PCIAddress, virtualFunctionToken: VFToken? = nil) throws(IOMMUError) -> Int32 {
        var name = address.description
        if let virtualFunctionToken { name += " vf_token=\(virtualFunctionToken)" }
        return try VFIOGroupIOCTL.getDeviceFD(seam, fd, group: UInt32(number), name: name, fileID: #fileID, line: #line)
    }

}
