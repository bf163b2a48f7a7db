/*
 * Compile-time proof of the hand-written layouts: a wrong size fails the
 * build, not a test. The sizes are the x86_64 Linux 7.3 ones; the Swift ABI
 * tests check the same values plus field offsets and request numbers.
 */
#include "CIOMMUFD.h"

#define CIOMMUFD_EXPECT_SIZE(type, bytes) \
    _Static_assert(sizeof(struct type) == (bytes), #type " has the wrong size")

CIOMMUFD_EXPECT_SIZE(iommu_destroy, 8);
CIOMMUFD_EXPECT_SIZE(iommu_ioas_alloc, 12);
CIOMMUFD_EXPECT_SIZE(iommu_iova_range, 16);
CIOMMUFD_EXPECT_SIZE(iommu_ioas_iova_ranges, 32);
CIOMMUFD_EXPECT_SIZE(iommu_ioas_allow_iovas, 24);
CIOMMUFD_EXPECT_SIZE(iommu_ioas_map, 40);
CIOMMUFD_EXPECT_SIZE(iommu_ioas_noiommu_get_pa, 40);
CIOMMUFD_EXPECT_SIZE(iommu_ioas_map_file, 40);
CIOMMUFD_EXPECT_SIZE(iommu_ioas_copy, 40);
CIOMMUFD_EXPECT_SIZE(iommu_ioas_unmap, 24);
CIOMMUFD_EXPECT_SIZE(iommu_option, 24);
CIOMMUFD_EXPECT_SIZE(iommu_vfio_ioas, 12);
CIOMMUFD_EXPECT_SIZE(iommu_hwpt_vtd_s1, 24);
CIOMMUFD_EXPECT_SIZE(iommu_hwpt_arm_smmuv3, 16);
CIOMMUFD_EXPECT_SIZE(iommu_hwpt_amd_guest, 32);
CIOMMUFD_EXPECT_SIZE(iommu_hwpt_alloc, 48);
CIOMMUFD_EXPECT_SIZE(iommu_hw_info_vtd, 24);
CIOMMUFD_EXPECT_SIZE(iommu_hw_info_arm_smmuv3, 40);
CIOMMUFD_EXPECT_SIZE(iommu_hw_info_tegra241_cmdqv, 8);
CIOMMUFD_EXPECT_SIZE(iommu_hw_info_amd, 16);
CIOMMUFD_EXPECT_SIZE(iommu_hw_info, 40);
CIOMMUFD_EXPECT_SIZE(iommu_hwpt_set_dirty_tracking, 16);
CIOMMUFD_EXPECT_SIZE(iommu_hwpt_get_dirty_bitmap, 48);
CIOMMUFD_EXPECT_SIZE(iommu_hwpt_vtd_s1_invalidate, 24);
CIOMMUFD_EXPECT_SIZE(iommu_viommu_arm_smmuv3_invalidate, 16);
CIOMMUFD_EXPECT_SIZE(iommu_hwpt_invalidate, 32);
CIOMMUFD_EXPECT_SIZE(iommu_hwpt_pgfault, 40);
CIOMMUFD_EXPECT_SIZE(iommu_hwpt_page_response, 8);
CIOMMUFD_EXPECT_SIZE(iommu_fault_alloc, 16);
CIOMMUFD_EXPECT_SIZE(iommu_viommu_alloc, 40);
CIOMMUFD_EXPECT_SIZE(iommu_vdevice_alloc, 24);
CIOMMUFD_EXPECT_SIZE(iommu_ioas_change_process, 8);
CIOMMUFD_EXPECT_SIZE(iommufd_vevent_header, 8);
CIOMMUFD_EXPECT_SIZE(iommu_veventq_alloc, 32);
CIOMMUFD_EXPECT_SIZE(iommu_hw_queue_alloc, 40);
CIOMMUFD_EXPECT_SIZE(vfio_device_bind_iommufd, 24);
CIOMMUFD_EXPECT_SIZE(vfio_device_attach_iommufd_pt, 16);
CIOMMUFD_EXPECT_SIZE(vfio_device_detach_iommufd_pt, 12);
CIOMMUFD_EXPECT_SIZE(vfio_device_info, 24);
CIOMMUFD_EXPECT_SIZE(vfio_region_info, 32);
CIOMMUFD_EXPECT_SIZE(vfio_irq_info, 16);
CIOMMUFD_EXPECT_SIZE(vfio_irq_set, 20);
CIOMMUFD_EXPECT_SIZE(vfio_iommu_type1_dma_map, 32);
CIOMMUFD_EXPECT_SIZE(vfio_iommu_type1_dma_unmap, 24);
CIOMMUFD_EXPECT_SIZE(vfio_group_status, 8);
CIOMMUFD_EXPECT_SIZE(iommu_test_cmd, 72);

