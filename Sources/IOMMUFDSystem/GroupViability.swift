/// The kernel's rule for whether an IOMMU group can be handed to user space: every member is
/// bound to no driver or to one that manages DMA itself (`driver_managed_dma = true`, checked
/// by `iommu_group_claim_dma_owner` in `drivers/iommu/iommu.c`): vfio-pci and its variant
/// drivers (`drivers/vfio/pci/vfio_pci.c:233`, `mlx5`, `hisi_acc`, `virtio`...), pci-stub
/// (`drivers/pci/pci-stub.c:39`) and the PCIe port driver (`drivers/pci/pcie/portdrv.c:801`).
/// The VFIO layer and MockKernel both judge groups by it.
public enum GroupViability {
    /// Whether a member bound to `driver` (its sysfs driver name; `nil` for none) leaves the
    /// group viable.
    public static func allows(driver: String?) -> Bool {
        guard let driver else { return true }
        return driver.contains("vfio") || driver == "pci-stub" || driver == "pcieport"
    }
}
