#include "CBenchBaseline.h"
#include "CIOMMUFD.h"
#include <errno.h>
#include <sys/ioctl.h>

/* libc: ioctl(3), errno read on failure. */
static inline int issue_libc(int fd, unsigned long request, void *argument) {
    int result = ioctl(fd, request, argument);
    return result < 0 ? -errno : result;
}

/* In place: the shim's primitive, -errno on failure. */
static inline int issue_in_place(int fd, unsigned long request, void *argument) {
    return ciommufd_ioctl(fd, request, argument);
}

#define UNMAP_LOOP(name, issue)                                                               \
    uint64_t name(int fd, uint32_t ioas_id, uint64_t iterations) {                            \
        uint64_t errors = 0;                                                                  \
        for (uint64_t i = 0; i < iterations; i++) {                                           \
            struct iommu_ioas_unmap command = {                                               \
                .size = sizeof(command), .ioas_id = ioas_id, .iova = 0x100000, .length = 0x1000, \
            };                                                                                \
            int result = issue(fd, IOMMU_IOAS_UNMAP, &command);                               \
            if (result < 0) errors += (uint64_t)-result;                                      \
        }                                                                                     \
        return errors;                                                                        \
    }

UNMAP_LOOP(ciommufd_bench_unmap_loop_libc, issue_libc)
UNMAP_LOOP(ciommufd_bench_unmap_loop_in_place, issue_in_place)

#define MAP_UNMAP_LOOP(name, issue)                                                           \
    uint64_t name(int fd, uint32_t ioas_id, uint64_t va, uint64_t length, uint64_t iova, uint64_t iterations) { \
        uint64_t failures = 0;                                                                \
        for (uint64_t i = 0; i < iterations; i++) {                                           \
            struct iommu_ioas_map map = {                                                     \
                .size = sizeof(map),                                                          \
                .flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE, \
                .ioas_id = ioas_id, .user_va = va, .length = length, .iova = iova,           \
            };                                                                                \
            if (issue(fd, IOMMU_IOAS_MAP, &map) != 0) { failures++; continue; }               \
            struct iommu_ioas_unmap unmap = { .size = sizeof(unmap), .ioas_id = ioas_id, .iova = iova, .length = length }; \
            if (issue(fd, IOMMU_IOAS_UNMAP, &unmap) != 0 || unmap.length != length) failures++; \
        }                                                                                     \
        return failures;                                                                      \
    }

MAP_UNMAP_LOOP(ciommufd_bench_map_unmap_loop_libc, issue_libc)
MAP_UNMAP_LOOP(ciommufd_bench_map_unmap_loop_in_place, issue_in_place)

/* IOMMU_IOAS_MAP_FILE of [start, start + length) of `file` at a fixed iova, then
 * IOMMU_IOAS_UNMAP of it: the same flags and checks as MAP_UNMAP_LOOP. */
#define MAP_FILE_UNMAP_LOOP(name, issue)                                                      \
    uint64_t name(int fd, uint32_t ioas_id, int file, uint64_t start, uint64_t length, uint64_t iova, uint64_t iterations) { \
        uint64_t failures = 0;                                                                \
        for (uint64_t i = 0; i < iterations; i++) {                                           \
            struct iommu_ioas_map_file map = {                                                \
                .size = sizeof(map),                                                          \
                .flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE, \
                .ioas_id = ioas_id, .fd = file, .start = start, .length = length, .iova = iova, \
            };                                                                                \
            if (issue(fd, IOMMU_IOAS_MAP_FILE, &map) != 0) { failures++; continue; }          \
            struct iommu_ioas_unmap unmap = { .size = sizeof(unmap), .ioas_id = ioas_id, .iova = iova, .length = length }; \
            if (issue(fd, IOMMU_IOAS_UNMAP, &unmap) != 0 || unmap.length != length) failures++; \
        }                                                                                     \
        return failures;                                                                      \
    }

MAP_FILE_UNMAP_LOOP(ciommufd_bench_map_file_unmap_loop_libc, issue_libc)
MAP_FILE_UNMAP_LOOP(ciommufd_bench_map_file_unmap_loop_in_place, issue_in_place)
