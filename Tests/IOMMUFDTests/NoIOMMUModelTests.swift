import CIOMMUFD
import IOMMUFD
import IOMMUFDSystem
import MockKernel
import SystemPackage
import Testing
import VFIO

/// The unsafe no-IOMMU cdev mode on MockKernel: a function without an IOMMU on vfio-pci is
/// `noiommu-vfioN`, opens only with CAP_SYS_RAWIO, has no hardware info, attaches to an
/// IOAS through a software table, and `IOMMU_IOAS_NOIOMMU_GET_PA` gives the memory behind
/// an IOVA. The VM lane's no-IOMMU boot runs the same walk on 7.3.4 with edu's DMA
/// (NoIOMMUTests).
@Suite("the no-IOMMU cdev mode on MockKernel")
struct NoIOMMUModelTests {
    static func machine(rawIO: Bool = true) -> MockKernel {
        var configuration = MockKernel.Configuration()
        configuration.noIOMMUEnabled = true
        configuration.hasSysRawIO = rawIO
        var function = MockKernel.PCIDevice.edu()
        function.withoutIOMMU = true
        configuration.addPCIDevice(function)
        return MockKernel(configuration: configuration)
    }

    @Test("the cdev is noiommu-vfioN and needs CAP_SYS_RAWIO (EPERM, device_cdev.c:38-41)")
    func cdevNeedsRawIO() throws {
        let address = try PCIAddress(parsing: "0000:00:02.0")
        let kernel = Self.machine(rawIO: false)
        let path = try VFIODevice.cdevPath(of: address, system: kernel)
        #expect(path == "/dev/vfio/devices/noiommu-vfio0")
        do {
            _ = try VFIODevice(cdevPath: path, system: kernel)
            Issue.record("opened without CAP_SYS_RAWIO")
        } catch {
            #expect(error.errno == .notPermitted)
        }
    }

    @Test("physical addresses: none before the IOAS has the software table (EOPNOTSUPP), then the buffer's; an unmapped IOVA ENOENT; no hardware info, no HWPT flags (EOPNOTSUPP)")
    func physicalAddresses() throws {
        let kernel = Self.machine()
        do {
            let context = try DMAContext(path: .only(.iommufdCdev), system: kernel)
            guard case .iommufd(let ioas) = context.addressSpace else { Issue.record("not an iommufd context"); return }
            let memory = try kernel.mmap(address: nil, length: 8192, protection: PROT_READ | PROT_WRITE, flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
            let mapping = try unsafe ioas.map(userAddress: UInt64(UInt(bitPattern: memory)), length: 8192, at: IOVA(0x10_0000))
            #expect(errnoOf { try ioas.physicalRanges(of: mapping.iova, length: 8192) } == .notSupported)
            let teaching = try context.claim(try PCIAddress(parsing: "0000:00:02.0"))
            let device = try #require(teaching.device.deviceID)
            #expect(errnoOf { try ioas.iommufd.hardwareInfo(of: device) } == .notSupported)
            #expect(errnoOf { try ioas.allocateHWPT(for: device, flags: [.nestParent]) } == .notSupported)
            let ranges = try ioas.physicalRanges(of: IOVA(0x10_1000), length: 4096)
            #expect(ranges == [PhysicalRange(address: UInt64(UInt(bitPattern: memory)) + 4096, length: 4096)])
            #expect(errnoOf { try ioas.physicalRanges(of: IOVA(0x90_0000), length: 4096) } == .noSuchFileOrDirectory)
            try ioas.unmap(mapping)
            try kernel.munmap(memory, length: 8192)
        }
        #expect(kernel.leaks.isEmpty, "leaked: \(kernel.leaks)")
    }
}
