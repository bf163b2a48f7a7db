import CIOMMUFD
import IOMMUFD
import SystemPackage
import VFIO

/// Opens a device's VFIO cdev without binding it and issues requests that need a bound
/// device (a known one, an unknown one, a reset): the errno of each, by name. The same
/// function runs on the kernel (the VM lane) and on MockKernel (the mock tier).
public enum UnboundCdevProbe {
    /// What Linux 7.3 answers: EINVAL for all (the `access_granted` check comes first).
    public static let expected = ["VFIO_DEVICE_GET_INFO": "EINVAL", "unknown 0x3b7f": "EINVAL", "VFIO_DEVICE_RESET": "EINVAL"]

    /// The answers for the device at `address` through `system`.
    public static func answers(_ address: PCIAddress, system: any SystemInterface) throws -> [String: String] {
        let path = try VFIODevice.cdevPath(of: address, system: system)
        let fd = try system.open(path, flags: O_RDWR, mode: 0)
        defer { try? system.close(fd) }
        let seam = IOCTLSeam(system)
        func name(_ call: () throws(IOMMUError) -> Void) -> String {
            do throws(IOMMUError) { try call(); return "ok" } catch { return ErrnoName.name(of: error.errno) }
        }
        let room = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
        defer { room.deallocate() }
        room.initializeMemory(as: UInt8.self, repeating: 0)
        return [
            "VFIO_DEVICE_GET_INFO": name { () throws(IOMMUError) in _ = try VFIODeviceIOCTL.getInfo(seam, fd, fileID: #fileID, line: #line) },
            "unknown 0x3b7f": name { () throws(IOMMUError) in
                do throws(Errno) {
                    _ = try IOMMUFDIOCTL.raw(seam, fd, request: 0x3b7f, argument: room.baseAddress)
                } catch {
                    throw IOMMUError(.vfioDeviceGetInfo, error)
                }
            },
            "VFIO_DEVICE_RESET": name { () throws(IOMMUError) in try VFIODeviceIOCTL.reset(seam, fd, fileID: #fileID, line: #line) },
        ]
    }
}
