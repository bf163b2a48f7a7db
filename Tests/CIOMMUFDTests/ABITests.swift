import CIOMMUFD
import Testing

// Golden ABI tests: every request number this package defines, and the size and key
// field offsets of its struct, against the Linux 7.3 x86_64 values (REFERENCE.md §1 and
// the uAPI headers). A wrong hand-written layout fails here before it reaches a kernel.

func offset<T>(_ key: PartialKeyPath<T>) -> Int? { MemoryLayout<T>.offset(of: key) }

@Suite("ABI: iommufd commands 0x80-0x95")
struct IOMMUFDCommandABITests {
    @Test("IOMMU_DESTROY is _IO(';', 0x80) over a 8-byte struct iommu_destroy")
    func iommuDestroy() {
        #expect(IOMMU_DESTROY == 0x3b80)
        #expect(MemoryLayout<iommu_destroy>.size == 8)
        #expect(offset(\iommu_destroy.id) == 4)
    }

    @Test("IOMMU_IOAS_ALLOC is _IO(';', 0x81) over a 12-byte struct iommu_ioas_alloc")
    func iommuIoasAlloc() {
        #expect(IOMMU_IOAS_ALLOC == 0x3b81)
        #expect(MemoryLayout<iommu_ioas_alloc>.size == 12)
        #expect(offset(\iommu_ioas_alloc.out_ioas_id) == 8)
    }

    @Test("IOMMU_IOAS_ALLOW_IOVAS is _IO(';', 0x82) over a 24-byte struct iommu_ioas_allow_iovas")
    func iommuIoasAllowIovas() {
        #expect(IOMMU_IOAS_ALLOW_IOVAS == 0x3b82)
        #expect(MemoryLayout<iommu_ioas_allow_iovas>.size == 24)
        #expect(offset(\iommu_ioas_allow_iovas.num_iovas) == 8)
        #expect(offset(\iommu_ioas_allow_iovas.allowed_iovas) == 16)
    }

    @Test("IOMMU_IOAS_COPY is _IO(';', 0x83) over a 40-byte struct iommu_ioas_copy")
    func iommuIoasCopy() {
        #expect(IOMMU_IOAS_COPY == 0x3b83)
        #expect(MemoryLayout<iommu_ioas_copy>.size == 40)
        #expect(offset(\iommu_ioas_copy.src_ioas_id) == 12)
        #expect(offset(\iommu_ioas_copy.length) == 16)
        #expect(offset(\iommu_ioas_copy.dst_iova) == 24)
        #expect(offset(\iommu_ioas_copy.src_iova) == 32)
    }

    @Test("IOMMU_IOAS_IOVA_RANGES is _IO(';', 0x84) over a 32-byte struct iommu_ioas_iova_ranges")
    func iommuIoasIovaRanges() {
        #expect(IOMMU_IOAS_IOVA_RANGES == 0x3b84)
        #expect(MemoryLayout<iommu_ioas_iova_ranges>.size == 32)
        #expect(offset(\iommu_ioas_iova_ranges.num_iovas) == 8)
        #expect(offset(\iommu_ioas_iova_ranges.allowed_iovas) == 16)
        #expect(offset(\iommu_ioas_iova_ranges.out_iova_alignment) == 24)
    }

    @Test("IOMMU_IOAS_MAP is _IO(';', 0x85) over a 40-byte struct iommu_ioas_map")
    func iommuIoasMap() {
        #expect(IOMMU_IOAS_MAP == 0x3b85)
        #expect(MemoryLayout<iommu_ioas_map>.size == 40)
        #expect(offset(\iommu_ioas_map.ioas_id) == 8)
        #expect(offset(\iommu_ioas_map.user_va) == 16)
        #expect(offset(\iommu_ioas_map.length) == 24)
        #expect(offset(\iommu_ioas_map.iova) == 32)
    }

    @Test("IOMMU_IOAS_UNMAP is _IO(';', 0x86) over a 24-byte struct iommu_ioas_unmap")
    func iommuIoasUnmap() {
        #expect(IOMMU_IOAS_UNMAP == 0x3b86)
        #expect(MemoryLayout<iommu_ioas_unmap>.size == 24)
        #expect(offset(\iommu_ioas_unmap.iova) == 8)
        #expect(offset(\iommu_ioas_unmap.length) == 16)
    }

    @Test("IOMMU_OPTION is _IO(';', 0x87) over a 24-byte struct iommu_option")
    func iommuOption() {
        #expect(IOMMU_OPTION == 0x3b87)
        #expect(MemoryLayout<iommu_option>.size == 24)
        #expect(offset(\iommu_option.op) == 8)
        #expect(offset(\iommu_option.object_id) == 12)
        #expect(offset(\iommu_option.val64) == 16)
    }

    @Test("IOMMU_VFIO_IOAS is _IO(';', 0x88) over a 12-byte struct iommu_vfio_ioas")
    func iommuVfioIoas() {
        #expect(IOMMU_VFIO_IOAS == 0x3b88)
        #expect(MemoryLayout<iommu_vfio_ioas>.size == 12)
        #expect(offset(\iommu_vfio_ioas.op) == 8)
    }

    @Test("IOMMU_HWPT_ALLOC is _IO(';', 0x89) over a 48-byte struct iommu_hwpt_alloc")
    func iommuHwptAlloc() {
        #expect(IOMMU_HWPT_ALLOC == 0x3b89)
        #expect(MemoryLayout<iommu_hwpt_alloc>.size == 48)
        #expect(offset(\iommu_hwpt_alloc.pt_id) == 12)
        #expect(offset(\iommu_hwpt_alloc.out_hwpt_id) == 16)
        #expect(offset(\iommu_hwpt_alloc.data_type) == 24)
        #expect(offset(\iommu_hwpt_alloc.data_uptr) == 32)
        #expect(offset(\iommu_hwpt_alloc.fault_id) == 40)
    }

    @Test("IOMMU_GET_HW_INFO is _IO(';', 0x8a) over a 40-byte struct iommu_hw_info")
    func iommuGetHwInfo() {
        #expect(IOMMU_GET_HW_INFO == 0x3b8a)
        #expect(MemoryLayout<iommu_hw_info>.size == 40)
        #expect(offset(\iommu_hw_info.data_uptr) == 16)
        #expect(offset(\iommu_hw_info.data_len) == 12)
        #expect(offset(\iommu_hw_info.out_max_pasid_log2) == 28)
        #expect(offset(\iommu_hw_info.out_capabilities) == 32)
    }

    @Test("IOMMU_HWPT_SET_DIRTY_TRACKING is _IO(';', 0x8b) over a 16-byte struct iommu_hwpt_set_dirty_tracking")
    func iommuHwptSetDirtyTracking() {
        #expect(IOMMU_HWPT_SET_DIRTY_TRACKING == 0x3b8b)
        #expect(MemoryLayout<iommu_hwpt_set_dirty_tracking>.size == 16)
        #expect(offset(\iommu_hwpt_set_dirty_tracking.hwpt_id) == 8)
    }

    @Test("IOMMU_HWPT_GET_DIRTY_BITMAP is _IO(';', 0x8c) over a 48-byte struct iommu_hwpt_get_dirty_bitmap")
    func iommuHwptGetDirtyBitmap() {
        #expect(IOMMU_HWPT_GET_DIRTY_BITMAP == 0x3b8c)
        #expect(MemoryLayout<iommu_hwpt_get_dirty_bitmap>.size == 48)
        #expect(offset(\iommu_hwpt_get_dirty_bitmap.iova) == 16)
        #expect(offset(\iommu_hwpt_get_dirty_bitmap.page_size) == 32)
        #expect(offset(\iommu_hwpt_get_dirty_bitmap.data) == 40)
    }

    @Test("IOMMU_HWPT_INVALIDATE is _IO(';', 0x8d) over a 32-byte struct iommu_hwpt_invalidate")
    func iommuHwptInvalidate() {
        #expect(IOMMU_HWPT_INVALIDATE == 0x3b8d)
        #expect(MemoryLayout<iommu_hwpt_invalidate>.size == 32)
        #expect(offset(\iommu_hwpt_invalidate.data_uptr) == 8)
        #expect(offset(\iommu_hwpt_invalidate.entry_len) == 20)
        #expect(offset(\iommu_hwpt_invalidate.entry_num) == 24)
    }

    @Test("IOMMU_FAULT_QUEUE_ALLOC is _IO(';', 0x8e) over a 16-byte struct iommu_fault_alloc")
    func iommuFaultQueueAlloc() {
        #expect(IOMMU_FAULT_QUEUE_ALLOC == 0x3b8e)
        #expect(MemoryLayout<iommu_fault_alloc>.size == 16)
        #expect(offset(\iommu_fault_alloc.out_fault_id) == 8)
        #expect(offset(\iommu_fault_alloc.out_fault_fd) == 12)
    }

    @Test("IOMMU_IOAS_MAP_FILE is _IO(';', 0x8f) over a 40-byte struct iommu_ioas_map_file")
    func iommuIoasMapFile() {
        #expect(IOMMU_IOAS_MAP_FILE == 0x3b8f)
        #expect(MemoryLayout<iommu_ioas_map_file>.size == 40)
        #expect(offset(\iommu_ioas_map_file.fd) == 12)
        #expect(offset(\iommu_ioas_map_file.start) == 16)
        #expect(offset(\iommu_ioas_map_file.length) == 24)
        #expect(offset(\iommu_ioas_map_file.iova) == 32)
    }

    @Test("IOMMU_VIOMMU_ALLOC is _IO(';', 0x90) over a 40-byte struct iommu_viommu_alloc")
    func iommuViommuAlloc() {
        #expect(IOMMU_VIOMMU_ALLOC == 0x3b90)
        #expect(MemoryLayout<iommu_viommu_alloc>.size == 40)
        #expect(offset(\iommu_viommu_alloc.hwpt_id) == 16)
        #expect(offset(\iommu_viommu_alloc.out_viommu_id) == 20)
        #expect(offset(\iommu_viommu_alloc.data_uptr) == 32)
    }

    @Test("IOMMU_VDEVICE_ALLOC is _IO(';', 0x91) over a 24-byte struct iommu_vdevice_alloc")
    func iommuVdeviceAlloc() {
        #expect(IOMMU_VDEVICE_ALLOC == 0x3b91)
        #expect(MemoryLayout<iommu_vdevice_alloc>.size == 24)
        #expect(offset(\iommu_vdevice_alloc.out_vdevice_id) == 12)
        #expect(offset(\iommu_vdevice_alloc.virt_id) == 16)
    }

    @Test("IOMMU_IOAS_CHANGE_PROCESS is _IO(';', 0x92) over a 8-byte struct iommu_ioas_change_process")
    func iommuIoasChangeProcess() {
        #expect(IOMMU_IOAS_CHANGE_PROCESS == 0x3b92)
        #expect(MemoryLayout<iommu_ioas_change_process>.size == 8)
        #expect(offset(\iommu_ioas_change_process.__reserved) == 4)
    }

    @Test("IOMMU_VEVENTQ_ALLOC is _IO(';', 0x93) over a 32-byte struct iommu_veventq_alloc")
    func iommuVeventqAlloc() {
        #expect(IOMMU_VEVENTQ_ALLOC == 0x3b93)
        #expect(MemoryLayout<iommu_veventq_alloc>.size == 32)
        #expect(offset(\iommu_veventq_alloc.veventq_depth) == 16)
        #expect(offset(\iommu_veventq_alloc.out_veventq_fd) == 24)
    }

    @Test("IOMMU_HW_QUEUE_ALLOC is _IO(';', 0x94) over a 40-byte struct iommu_hw_queue_alloc")
    func iommuHwQueueAlloc() {
        #expect(IOMMU_HW_QUEUE_ALLOC == 0x3b94)
        #expect(MemoryLayout<iommu_hw_queue_alloc>.size == 40)
        #expect(offset(\iommu_hw_queue_alloc.out_hw_queue_id) == 20)
        #expect(offset(\iommu_hw_queue_alloc.nesting_parent_iova) == 24)
        #expect(offset(\iommu_hw_queue_alloc.length) == 32)
    }

    @Test("IOMMU_IOAS_NOIOMMU_GET_PA is _IO(';', 0x95) over a 40-byte struct iommu_ioas_noiommu_get_pa")
    func iommuIoasNoiommuGetPa() {
        #expect(IOMMU_IOAS_NOIOMMU_GET_PA == 0x3b95)
        #expect(MemoryLayout<iommu_ioas_noiommu_get_pa>.size == 40)
        #expect(offset(\iommu_ioas_noiommu_get_pa.iova) == 16)
        #expect(offset(\iommu_ioas_noiommu_get_pa.length) == 24)
        #expect(offset(\iommu_ioas_noiommu_get_pa.out_phys) == 32)
    }

    @Test("IOMMU_TEST_CMD (selftest only) is _IO(';', 0xa0) over a 72-byte struct")
    func iommuTestCmd() {
        #expect(IOMMU_TEST_CMD == 0x3ba0)
        #expect(MemoryLayout<iommu_test_cmd>.size == 72)
        #expect(offset(\iommu_test_cmd.last) == 64)
        #expect(offset(\iommu_test_cmd.op) == 4)
    }
}

@Suite("ABI: VFIO ioctls (cdev, device, legacy container and group)")
struct VFIOIoctlABITests {
    @Test("VFIO_GET_API_VERSION is _IO(';', 100 + 0)")
    func vfioGetApiVersion() {
        #expect(VFIO_GET_API_VERSION == 0x3b64)
    }

    @Test("VFIO_CHECK_EXTENSION is _IO(';', 100 + 1)")
    func vfioCheckExtension() {
        #expect(VFIO_CHECK_EXTENSION == 0x3b65)
    }

    @Test("VFIO_SET_IOMMU is _IO(';', 100 + 2)")
    func vfioSetIommu() {
        #expect(VFIO_SET_IOMMU == 0x3b66)
    }

    @Test("VFIO_GROUP_GET_STATUS is _IO(';', 100 + 3) over a 8-byte struct vfio_group_status")
    func vfioGroupGetStatus() {
        #expect(VFIO_GROUP_GET_STATUS == 0x3b67)
        #expect(MemoryLayout<vfio_group_status>.size == 8)
        #expect(offset(\vfio_group_status.flags) == 4)
    }

    @Test("VFIO_GROUP_SET_CONTAINER is _IO(';', 100 + 4)")
    func vfioGroupSetContainer() {
        #expect(VFIO_GROUP_SET_CONTAINER == 0x3b68)
    }

    @Test("VFIO_GROUP_UNSET_CONTAINER is _IO(';', 100 + 5)")
    func vfioGroupUnsetContainer() {
        #expect(VFIO_GROUP_UNSET_CONTAINER == 0x3b69)
    }

    @Test("VFIO_GROUP_GET_DEVICE_FD is _IO(';', 100 + 6)")
    func vfioGroupGetDeviceFd() {
        #expect(VFIO_GROUP_GET_DEVICE_FD == 0x3b6a)
    }

    @Test("VFIO_DEVICE_GET_INFO is _IO(';', 100 + 7) over a 24-byte struct vfio_device_info")
    func vfioDeviceGetInfo() {
        #expect(VFIO_DEVICE_GET_INFO == 0x3b6b)
        #expect(MemoryLayout<vfio_device_info>.size == 24)
        #expect(offset(\vfio_device_info.num_regions) == 8)
        #expect(offset(\vfio_device_info.num_irqs) == 12)
        #expect(offset(\vfio_device_info.cap_offset) == 16)
    }

    @Test("VFIO_DEVICE_GET_REGION_INFO is _IO(';', 100 + 8) over a 32-byte struct vfio_region_info")
    func vfioDeviceGetRegionInfo() {
        #expect(VFIO_DEVICE_GET_REGION_INFO == 0x3b6c)
        #expect(MemoryLayout<vfio_region_info>.size == 32)
        #expect(offset(\vfio_region_info.index) == 8)
        #expect(offset(\vfio_region_info.cap_offset) == 12)
        #expect(offset(\vfio_region_info.size) == 16)
        #expect(offset(\vfio_region_info.offset) == 24)
    }

    @Test("VFIO_DEVICE_GET_IRQ_INFO is _IO(';', 100 + 9) over a 16-byte struct vfio_irq_info")
    func vfioDeviceGetIrqInfo() {
        #expect(VFIO_DEVICE_GET_IRQ_INFO == 0x3b6d)
        #expect(MemoryLayout<vfio_irq_info>.size == 16)
        #expect(offset(\vfio_irq_info.index) == 8)
        #expect(offset(\vfio_irq_info.count) == 12)
    }

    @Test("VFIO_DEVICE_SET_IRQS is _IO(';', 100 + 10) over a 20-byte struct vfio_irq_set")
    func vfioDeviceSetIrqs() {
        #expect(VFIO_DEVICE_SET_IRQS == 0x3b6e)
        #expect(MemoryLayout<vfio_irq_set>.size == 20)
        #expect(offset(\vfio_irq_set.index) == 8)
        #expect(offset(\vfio_irq_set.start) == 12)
        #expect(offset(\vfio_irq_set.count) == 16)
    }

    @Test("VFIO_DEVICE_RESET is _IO(';', 100 + 11)")
    func vfioDeviceReset() {
        #expect(VFIO_DEVICE_RESET == 0x3b6f)
    }

    @Test("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO is _IO(';', 100 + 12) over a 12-byte struct vfio_pci_hot_reset_info")
    func vfioDeviceGetPciHotResetInfo() {
        #expect(VFIO_DEVICE_GET_PCI_HOT_RESET_INFO == 0x3b70)
        #expect(MemoryLayout<vfio_pci_hot_reset_info>.size == 12)
        #expect(offset(\vfio_pci_hot_reset_info.count) == 8)
    }

    @Test("VFIO_DEVICE_PCI_HOT_RESET is _IO(';', 100 + 13) over a 12-byte struct vfio_pci_hot_reset")
    func vfioDevicePciHotReset() {
        #expect(VFIO_DEVICE_PCI_HOT_RESET == 0x3b71)
        #expect(MemoryLayout<vfio_pci_hot_reset>.size == 12)
        #expect(offset(\vfio_pci_hot_reset.count) == 8)
    }

    @Test("VFIO_DEVICE_QUERY_GFX_PLANE is _IO(';', 100 + 14)")
    func vfioDeviceQueryGfxPlane() {
        #expect(VFIO_DEVICE_QUERY_GFX_PLANE == 0x3b72)
    }

    @Test("VFIO_DEVICE_GET_GFX_DMABUF is _IO(';', 100 + 15)")
    func vfioDeviceGetGfxDmabuf() {
        #expect(VFIO_DEVICE_GET_GFX_DMABUF == 0x3b73)
    }

    @Test("VFIO_DEVICE_IOEVENTFD is _IO(';', 100 + 16) over a 32-byte struct vfio_device_ioeventfd")
    func vfioDeviceIoeventfd() {
        #expect(VFIO_DEVICE_IOEVENTFD == 0x3b74)
        #expect(MemoryLayout<vfio_device_ioeventfd>.size == 32)
        #expect(offset(\vfio_device_ioeventfd.offset) == 8)
        #expect(offset(\vfio_device_ioeventfd.data) == 16)
        #expect(offset(\vfio_device_ioeventfd.fd) == 24)
    }

    @Test("VFIO_DEVICE_FEATURE is _IO(';', 100 + 17) over a 8-byte struct vfio_device_feature")
    func vfioDeviceFeature() {
        #expect(VFIO_DEVICE_FEATURE == 0x3b75)
        #expect(MemoryLayout<vfio_device_feature>.size == 8)
        #expect(offset(\vfio_device_feature.flags) == 4)
    }

    @Test("VFIO_DEVICE_BIND_IOMMUFD is _IO(';', 100 + 18) over a 24-byte struct vfio_device_bind_iommufd")
    func vfioDeviceBindIommufd() {
        #expect(VFIO_DEVICE_BIND_IOMMUFD == 0x3b76)
        #expect(MemoryLayout<vfio_device_bind_iommufd>.size == 24)
        #expect(offset(\vfio_device_bind_iommufd.iommufd) == 8)
        #expect(offset(\vfio_device_bind_iommufd.out_devid) == 12)
        #expect(offset(\vfio_device_bind_iommufd.token_uuid_ptr) == 16)
    }

    @Test("VFIO_DEVICE_ATTACH_IOMMUFD_PT is _IO(';', 100 + 19) over a 16-byte struct vfio_device_attach_iommufd_pt")
    func vfioDeviceAttachIommufdPt() {
        #expect(VFIO_DEVICE_ATTACH_IOMMUFD_PT == 0x3b77)
        #expect(MemoryLayout<vfio_device_attach_iommufd_pt>.size == 16)
        #expect(offset(\vfio_device_attach_iommufd_pt.pt_id) == 8)
        #expect(offset(\vfio_device_attach_iommufd_pt.pasid) == 12)
    }

    @Test("VFIO_DEVICE_DETACH_IOMMUFD_PT is _IO(';', 100 + 20) over a 12-byte struct vfio_device_detach_iommufd_pt")
    func vfioDeviceDetachIommufdPt() {
        #expect(VFIO_DEVICE_DETACH_IOMMUFD_PT == 0x3b78)
        #expect(MemoryLayout<vfio_device_detach_iommufd_pt>.size == 12)
        #expect(offset(\vfio_device_detach_iommufd_pt.pasid) == 8)
    }

    @Test("VFIO_MIG_GET_PRECOPY_INFO is _IO(';', 100 + 21)")
    func vfioMigGetPrecopyInfo() {
        #expect(VFIO_MIG_GET_PRECOPY_INFO == 0x3b79)
    }

    @Test("VFIO_IOMMU_GET_INFO is _IO(';', 100 + 12) over a 24-byte struct vfio_iommu_type1_info")
    func vfioIommuGetInfo() {
        #expect(VFIO_IOMMU_GET_INFO == 0x3b70)
        #expect(MemoryLayout<vfio_iommu_type1_info>.size == 24)
        #expect(offset(\vfio_iommu_type1_info.iova_pgsizes) == 8)
        #expect(offset(\vfio_iommu_type1_info.cap_offset) == 16)
    }

    @Test("VFIO_IOMMU_MAP_DMA is _IO(';', 100 + 13) over a 32-byte struct vfio_iommu_type1_dma_map")
    func vfioIommuMapDma() {
        #expect(VFIO_IOMMU_MAP_DMA == 0x3b71)
        #expect(MemoryLayout<vfio_iommu_type1_dma_map>.size == 32)
        #expect(offset(\vfio_iommu_type1_dma_map.vaddr) == 8)
        #expect(offset(\vfio_iommu_type1_dma_map.iova) == 16)
        #expect(offset(\vfio_iommu_type1_dma_map.size) == 24)
    }

    @Test("VFIO_IOMMU_UNMAP_DMA is _IO(';', 100 + 14) over a 24-byte struct vfio_iommu_type1_dma_unmap")
    func vfioIommuUnmapDma() {
        #expect(VFIO_IOMMU_UNMAP_DMA == 0x3b72)
        #expect(MemoryLayout<vfio_iommu_type1_dma_unmap>.size == 24)
        #expect(offset(\vfio_iommu_type1_dma_unmap.iova) == 8)
        #expect(offset(\vfio_iommu_type1_dma_unmap.size) == 16)
    }

    @Test("VFIO_IOMMU_DIRTY_PAGES is _IO(';', 100 + 17) over a 8-byte struct vfio_iommu_type1_dirty_bitmap")
    func vfioIommuDirtyPages() {
        #expect(VFIO_IOMMU_DIRTY_PAGES == 0x3b75)
        #expect(MemoryLayout<vfio_iommu_type1_dirty_bitmap>.size == 8)
        #expect(offset(\vfio_iommu_type1_dirty_bitmap.flags) == 4)
    }

}
