import CIOMMUFD
import IOMMUFD
import SystemPackage

/// The VFIO group family of the ioctl catalogue (`/dev/vfio/N`): one function per ioctl.
package enum VFIOGroupIOCTL {
    /// `VFIO_GROUP_GET_STATUS`: the group's flags (viable, container set).
    package static func getStatus(_ seam: IOCTLSeam, _ fd: Int32, group: UInt32, fileID: StaticString, line: Int) throws(IOMMUError) -> UInt32 {
        var status = vfio_group_status()
        status.argsz = UInt32(MemoryLayout<vfio_group_status>.size)
        try issueIOCTL(seam, fd, VFIO_GROUP_GET_STATUS, .vfioGroupGetStatus, &status, IOMMUErrorContext(objectID: group), fileID: fileID, line: line)
        return status.flags
    }

    /// `VFIO_GROUP_SET_CONTAINER`: joins the group to a container (or an iommufd, for the compat path).
    package static func setContainer(_ seam: IOCTLSeam, _ fd: Int32, group: UInt32, container: Int32,
                                     fileID: StaticString, line: Int) throws(IOMMUError) {
        var descriptor = container
        try issueIOCTL(seam, fd, VFIO_GROUP_SET_CONTAINER, .vfioGroupSetContainer, &descriptor,
                       IOMMUErrorContext(objectID: group, fileDescriptor: container), fileID: fileID, line: line)
    }

    /// `VFIO_GROUP_UNSET_CONTAINER`: takes the group out of its container.
    package static func unsetContainer(_ seam: IOCTLSeam, _ fd: Int32, group: UInt32, fileID: StaticString, line: Int) throws(IOMMUError) {
        _ = try issueIOCTL(seam, fd, VFIO_GROUP_UNSET_CONTAINER, .vfioGroupUnsetContainer, argument: nil,
                           IOMMUErrorContext(objectID: group), fileID: fileID, line: line)
    }

    /// `VFIO_GROUP_GET_DEVICE_FD`: opens the device named `name` (its PCI address, plus
    /// ` vf_token=<uuid>` for a VF); returns the new descriptor.
    package static func getDeviceFD(_ seam: IOCTLSeam, _ fd: Int32, group: UInt32, name: String,
                                    fileID: StaticString, line: Int) throws(IOMMUError) -> Int32 {
        let characters = Array(name.utf8) + [0]
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: characters.count, alignment: 1)
        defer { unsafe buffer.deallocate() }
        unsafe buffer.copyBytes(from: characters)
        return unsafe try issueIOCTL(seam, fd, VFIO_GROUP_GET_DEVICE_FD, .vfioGroupGetDeviceFD, argument: buffer.baseAddress,
                              IOMMUErrorContext(objectID: group, path: name), fileID: fileID, line: line)
    }
}
