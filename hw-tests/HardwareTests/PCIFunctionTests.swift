import IOMMUFD
import Testing
import VFIO

extension HardwareSuite {
    /// QEMU's e1000e and NVMe controller behind intel-iommu: config space, BARs, regions
    /// and interrupts through the cdev and through the legacy group path.
    @Suite("Hardware: e1000e and nvme through both VFIO paths",
           .enabled(if: Hardware.e1000eDevice != nil && Hardware.nvmeDevice != nil, Hardware.qemuDevicesReason), .serialized)
    struct PCIFunctionTests {
        static let paths: [VFIODevice.Path] = Hardware.hasLegacyContainer ? [.iommufdCdev, .legacyGroup] : [.iommufdCdev]

        @Test("e1000e: config space ids, BAR0 STATUS answers, MSI-X offered with its table BAR mappable", arguments: paths)
        func e1000e(path: VFIODevice.Path) throws {
            let address = try #require(Hardware.e1000eDevice)
            let owned = try VFIOPCIDevice(address, path: .only(path))
            let device = owned.device
            #expect(try device.readConfiguration(UInt16.self, at: PCIConfiguration.vendorID) == 0x8086)
            #expect(try device.readConfiguration(UInt16.self, at: PCIConfiguration.deviceID) == 0x10d3)
            #expect(try device.readConfiguration(UInt32.self, at: PCIConfiguration.classRevision) >> 8 == 0x020000)
            let bar0 = try device.region(0)
            #expect(bar0.size == 0x20000 && bar0.isMappable)
            let registers = try device.map(bar0)
            // STATUS (0x08): never all-ones on a device that answers.
            #expect(registers.read32(at: 0x08) != 0xffff_ffff)
            let msix = try device.interruptInfo(.msix)
            #expect(msix.count == 5 && msix.signalsEventFD)
            let tableBAR = try device.region(3)
            #expect(tableBAR.size > 0 && tableBAR.capabilities.msixMappable)
            let vectors = try device.enableInterrupts(count: 5)
            #expect(vectors.kind == .msix && vectors.eventFileDescriptors.count == 5)
            try device.disableInterrupts(.msix)
            _ = consume registers
        }

        @Test("nvme: config space ids, BAR0 CAP and VS registers, function reset", arguments: paths)
        func nvme(path: VFIODevice.Path) throws {
            let address = try #require(Hardware.nvmeDevice)
            let owned = try VFIOPCIDevice(address, path: .only(path))
            let device = owned.device
            #expect(try device.readConfiguration(UInt16.self, at: PCIConfiguration.vendorID) == 0x1b36)
            #expect(try device.readConfiguration(UInt32.self, at: PCIConfiguration.classRevision) >> 8 == 0x010802)
            let registers = try device.map(device.region(0))
            let capabilities = registers.read64(at: 0x00)
            #expect(capabilities & 0xffff > 0, "CAP.MQES is the queue size minus one")
            let version = registers.read32(at: 0x08)
            #expect(version >> 16 >= 1, "NVMe version \(String(version, radix: 16))")
            _ = consume registers
            #expect(try device.info().canReset)
            try device.reset()
            #expect(try device.interruptInfo(.msix).count >= 1)
        }
    }
}
