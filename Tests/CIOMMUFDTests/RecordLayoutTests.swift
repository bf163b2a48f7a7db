import CIOMMUFD
import Testing

/// The payload and record structs that travel inside commands, by size (REFERENCE.md §1).
struct RecordSize: Sendable, CustomTestStringConvertible {
    let name: String
    let actual: Int
    let expected: Int
    var testDescription: String { "\(name) = \(expected)" }
}

let recordSizes: [RecordSize] = [
    RecordSize(name: "iommu_iova_range", actual: MemoryLayout<iommu_iova_range>.size, expected: 16),
    RecordSize(name: "iommu_hwpt_vtd_s1", actual: MemoryLayout<iommu_hwpt_vtd_s1>.size, expected: 24),
    RecordSize(name: "iommu_hwpt_arm_smmuv3", actual: MemoryLayout<iommu_hwpt_arm_smmuv3>.size, expected: 16),
    RecordSize(name: "iommu_hwpt_amd_guest", actual: MemoryLayout<iommu_hwpt_amd_guest>.size, expected: 32),
    RecordSize(name: "iommu_hw_info_vtd", actual: MemoryLayout<iommu_hw_info_vtd>.size, expected: 24),
    RecordSize(name: "iommu_hw_info_arm_smmuv3", actual: MemoryLayout<iommu_hw_info_arm_smmuv3>.size, expected: 40),
    RecordSize(name: "iommu_hw_info_tegra241_cmdqv", actual: MemoryLayout<iommu_hw_info_tegra241_cmdqv>.size, expected: 8),
    RecordSize(name: "iommu_hw_info_amd", actual: MemoryLayout<iommu_hw_info_amd>.size, expected: 16),
    RecordSize(name: "iommu_hwpt_vtd_s1_invalidate", actual: MemoryLayout<iommu_hwpt_vtd_s1_invalidate>.size, expected: 24),
    RecordSize(name: "iommu_viommu_arm_smmuv3_invalidate", actual: MemoryLayout<iommu_viommu_arm_smmuv3_invalidate>.size, expected: 16),
    RecordSize(name: "iommu_hwpt_pgfault", actual: MemoryLayout<iommu_hwpt_pgfault>.size, expected: 40),
    RecordSize(name: "iommu_hwpt_page_response", actual: MemoryLayout<iommu_hwpt_page_response>.size, expected: 8),
    RecordSize(name: "iommufd_vevent_header", actual: MemoryLayout<iommufd_vevent_header>.size, expected: 8),
    RecordSize(name: "iommu_vevent_arm_smmuv3", actual: MemoryLayout<iommu_vevent_arm_smmuv3>.size, expected: 32),
    RecordSize(name: "iommu_viommu_tegra241_cmdqv", actual: MemoryLayout<iommu_viommu_tegra241_cmdqv>.size, expected: 16),
    RecordSize(name: "vfio_info_cap_header", actual: MemoryLayout<vfio_info_cap_header>.size, expected: 8),
    RecordSize(name: "vfio_region_info_cap_sparse_mmap", actual: MemoryLayout<vfio_region_info_cap_sparse_mmap>.size, expected: 16),
    RecordSize(name: "vfio_region_sparse_mmap_area", actual: MemoryLayout<vfio_region_sparse_mmap_area>.size, expected: 16),
    RecordSize(name: "vfio_region_info_cap_type", actual: MemoryLayout<vfio_region_info_cap_type>.size, expected: 16),
    RecordSize(name: "vfio_pci_dependent_device", actual: MemoryLayout<vfio_pci_dependent_device>.size, expected: 8),
    RecordSize(name: "vfio_iova_range", actual: MemoryLayout<vfio_iova_range>.size, expected: 16),
    RecordSize(name: "vfio_iommu_type1_info_cap_iova_range", actual: MemoryLayout<vfio_iommu_type1_info_cap_iova_range>.size, expected: 16),
    RecordSize(name: "vfio_iommu_type1_info_cap_migration", actual: MemoryLayout<vfio_iommu_type1_info_cap_migration>.size, expected: 32),
    RecordSize(name: "vfio_iommu_type1_info_dma_avail", actual: MemoryLayout<vfio_iommu_type1_info_dma_avail>.size, expected: 12),
    RecordSize(name: "vfio_bitmap", actual: MemoryLayout<vfio_bitmap>.size, expected: 24),
    RecordSize(name: "vfio_iommu_type1_dirty_bitmap_get", actual: MemoryLayout<vfio_iommu_type1_dirty_bitmap_get>.size, expected: 40),
    RecordSize(name: "vfio_device_feature_dma_buf", actual: MemoryLayout<vfio_device_feature_dma_buf>.size, expected: 16),
    RecordSize(name: "vfio_region_dma_range", actual: MemoryLayout<vfio_region_dma_range>.size, expected: 16),
]

@Suite("ABI: records and flags")
struct RecordLayoutTests {
    @Test("record struct sizes", arguments: recordSizes)
    func recordSize(_ record: RecordSize) {
        #expect(record.actual == record.expected)
    }

    @Test("64-bit fields are 8-byte aligned (the uAPI's __aligned_u64)")
    func alignedU64() {
        #expect(MemoryLayout<iommu_iova_range>.alignment == 8)
        #expect(MemoryLayout<iommu_ioas_map>.alignment == 8)
        #expect(MemoryLayout<vfio_region_info>.alignment == 8)
    }

    @Test("map flags, HWPT flags and capability bits have the kernel's values")
    func flagValues() {
        #expect(IOMMU_IOAS_MAP_FIXED_IOVA == 1 && IOMMU_IOAS_MAP_WRITEABLE == 2 && IOMMU_IOAS_MAP_READABLE == 4)
        #expect(IOMMU_HWPT_ALLOC_NEST_PARENT == 1 && IOMMU_HWPT_ALLOC_DIRTY_TRACKING == 2)
        #expect(IOMMU_HWPT_FAULT_ID_VALID == 4 && IOMMU_HWPT_ALLOC_PASID == 8)
        #expect(IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED == 8)
        #expect(IOMMU_HWPT_DATA_AMD_GUEST == 3 && IOMMU_HW_INFO_TYPE_AMD == 4)
        #expect(VFIO_DEVICE_ATTACH_PASID == 1 && VFIO_DEVICE_BIND_FLAG_TOKEN == 1)
        #expect(VFIO_DEVICE_FEATURE_DMA_BUF == 11 && VFIO_DEVICE_FEATURE_ZPCI_ERROR == 13)
        #expect(VFIO_TYPE1v2_IOMMU == 3 && VFIO_NOIOMMU_IOMMU == 8 && VFIO_UNMAP_ALL == 9 && VFIO_UPDATE_VADDR == 10)
    }

    @Test("the request encoding matches REFERENCE.md's two spot values")
    func spotValues() {
        #expect(IOMMU_IOAS_MAP == 0x3b85)
        #expect(VFIO_DEVICE_BIND_IOMMUFD == 0x3b76)
        #expect(IOMMU_IOAS_ALLOC == 0x3b81)
        #expect(IOMMU_HWPT_ALLOC == 0x3b89)
    }
}
