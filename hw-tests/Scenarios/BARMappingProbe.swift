import CIOMMUFD
@_spi(Selftest) import IOMMUFD
import SystemPackage
import VFIO
#if canImport(Glibc)
import Glibc
#endif

/// A device cdev bound and attached to an IOAS, its BAR0 mapped, then its descriptor
/// closed before the mapping goes: whether the device is still attached (the IOAS busy)
/// until the munmap, as the kernel keeps the file while a mapping holds it. The same
/// function runs on the kernel (the VM lane) and on MockKernel.
public enum BARMappingProbe {
    /// The lines for the device at `address` through `system`.
    public static func lines(_ address: PCIAddress, system: any SystemInterface) throws -> [String] {
        let iommufd = try IOMMUFD(system: system)
        let ioas = try iommufd.allocateIOAS()
        let seam = IOCTLSeam(system)
        let fd = try system.open(try VFIODevice.cdevPath(of: address, system: system), flags: O_RDWR, mode: 0)
        _ = try VFIODeviceIOCTL.bind(seam, fd, iommufd: iommufd.fileDescriptor.rawValue, token: 0, fileID: #fileID, line: #line)
        _ = try VFIODeviceIOCTL.attach(seam, fd, pageTable: ioas.id.rawValue, fileID: #fileID, line: #line)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 8)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        let region = try VFIODeviceIOCTL.getRegionInfo(seam, fd, index: 0, into: buffer, fileID: #fileID, line: #line)
        let bar = try system.mmap(address: nil, length: Int(region.size), protection: PROT_READ | PROT_WRITE, flags: MAP_SHARED,
                                  fd: fd, offset: Int64(region.offset))
        try system.close(fd)
        var lines: [String] = []
        let outcome = ProbeOutcome.of
        lines.append("destroy the IOAS with the descriptor closed and BAR0 still mapped: " + outcome { () throws(IOMMUError) in try ioas.destroy() })
        try system.munmap(bar, length: Int(region.size))
        lines.append("destroy the IOAS after the munmap: " + outcome { () throws(IOMMUError) in try ioas.destroy() })
        return lines
    }
}
