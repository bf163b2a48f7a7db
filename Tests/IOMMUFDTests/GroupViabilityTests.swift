import IOMMUFD
import MockKernel
import Testing
import VFIO

/// One group-viability rule (the kernel's `driver_managed_dma`), applied by the VFIO layer's
/// sysfs reading and by MockKernel's `VFIO_GROUP_GET_STATUS` alike.
@Suite("group viability: the kernel's driver_managed_dma rule, in the VFIO layer and the mock")
struct GroupViabilityTests {
    @Test("drivers that manage DMA themselves keep a group viable; a host driver does not",
          arguments: [(String?.none, true), ("vfio-pci", true), ("mlx5_vfio_pci", true), ("pci-stub", true), ("pcieport", true),
                      ("e1000e", false), ("nvme", false)])
    func rule(driver: String?, viable: Bool) throws {
        #expect(GroupViability.allows(driver: driver) == viable)
        try withPCIMachine({ configuration in
            configuration.addPCIDevice(.init(address: "0000:00:06.0", vendorID: 0x8086, deviceID: 0x1234, iommuGroup: 3, driver: driver))
        }) { kernel in
            // e1000e (group 3) is on vfio-pci; its group mate decides.
            let function = try PCIFunction(e1000e, system: kernel)
            #expect(function.groupMembers(system: kernel).viable == viable)
            if viable {
                let owned = try VFIOPCIDevice(e1000e, path: .only(.legacyGroup), system: kernel)
                #expect(owned.path == .legacyGroup)
            } else {
                #expect(throws: IOMMUError.self) { try VFIOPCIDevice(e1000e, path: .only(.legacyGroup), system: kernel) }
            }
        }
    }
}
