#include "CBenchBaseline.h"
#include "CIOMMUFD.h"

uint64_t ciommufd_bench_unmap_loop(int fd, uint32_t ioas_id, uint64_t iterations) {
    uint64_t failures = 0;
    for (uint64_t i = 0; i < iterations; i++) {
        struct iommu_ioas_unmap command = {
            .size = sizeof(command), .ioas_id = ioas_id, .iova = 0x100000, .length = 0x1000,
        };
        if (ciommufd_ioctl(fd, IOMMU_IOAS_UNMAP, &command) != 0) failures++;
    }
    return failures;
}

uint64_t ciommufd_bench_map_unmap_loop(int fd, uint32_t ioas_id, uint64_t va, uint64_t length, uint64_t iova, uint64_t iterations) {
    uint64_t failures = 0;
    for (uint64_t i = 0; i < iterations; i++) {
        struct iommu_ioas_map map = {
            .size = sizeof(map), .flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
            .ioas_id = ioas_id, .user_va = va, .length = length, .iova = iova,
        };
        if (ciommufd_ioctl(fd, IOMMU_IOAS_MAP, &map) != 0) { failures++; continue; }
        struct iommu_ioas_unmap unmap = { .size = sizeof(unmap), .ioas_id = ioas_id, .iova = iova, .length = length };
        if (ciommufd_ioctl(fd, IOMMU_IOAS_UNMAP, &unmap) != 0 || unmap.length != length) failures++;
    }
    return failures;
}
