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
