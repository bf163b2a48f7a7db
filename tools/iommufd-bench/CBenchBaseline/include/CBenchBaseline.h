/* The C baseline for `iommufd-bench ioctl`: the same failing ioctl in a plain C loop. */
#ifndef CBENCHBASELINE_H
#define CBENCHBASELINE_H
#include <stdint.h>

/* Issues IOMMU_IOAS_UNMAP on `fd` `iterations` times; returns how many calls failed. */
uint64_t ciommufd_bench_unmap_loop(int fd, uint32_t ioas_id, uint64_t iterations);

#endif
