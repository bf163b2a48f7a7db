import IOMMUFD
import MockKernel
import Testing
import VFIO

/// A mapped BAR keeps its device: the region cannot outlive the device it belongs to.
@Suite("MMIO regions keep their device")
struct MMIORegionLifetimeTests {
    @Test("dropping every other reference to a device leaves it open while one of its BARs is mapped")
    func regionKeepsDeviceOpen() throws {
        try withPCIMachine { kernel in
            var region: MMIORegion? = try {
                let owned = try VFIOPCIDevice(edu, path: .only(.iommufdCdev), system: kernel)
                return try owned.device.map(owned.device.region(0))
            }()
            // The VFIOPCIDevice is gone; the region still holds the device (and its context).
            #expect(kernel.leaks.openFileDescriptors == 2, "the cdev and the iommufd stay open: \(kernel.leaks)")
            #expect(region?.owner.path.hasPrefix("/dev/vfio/devices/") == true)
            region?.write32(0x1234_5678, at: 0x04)
            #expect(region?.read32(at: 0x04) == 0x1234_5678, "the BAR is still mapped and reachable")
            region = nil
            #expect(kernel.leaks.isEmpty, "the last reference closed everything: \(kernel.leaks)")
        }
    }
}
