/* The C baselines for `iommufd-bench ioctl` and `map`: the same ioctls in plain C loops, issued two
 * ways: through libc's ioctl(3) wrapper, reading errno on failure (what a C library does),
 * and in place with the shim's ciommufd_ioctl (the primitive the Swift side uses). */
#ifndef CBENCHBASELINE_H
#define CBENCHBASELINE_H
#include <stdint.h>

/* Issues IOMMU_IOAS_UNMAP on `fd` `iterations` times; returns the sum of the errnos of the
 * calls that failed (ENOTTY on /dev/null, so the caller can check every call failed). */
uint64_t ciommufd_bench_unmap_loop_libc(int fd, uint32_t ioas_id, uint64_t iterations);
uint64_t ciommufd_bench_unmap_loop_in_place(int fd, uint32_t ioas_id, uint64_t iterations);
/* IOMMU_IOAS_MAP of [va, va + length) at a fixed iova, then IOMMU_IOAS_UNMAP of it,
 * `iterations` times on a real iommufd; returns how many of the calls failed. */
uint64_t ciommufd_bench_map_unmap_loop_libc(int fd, uint32_t ioas_id, uint64_t va, uint64_t length, uint64_t iova, uint64_t iterations);
uint64_t ciommufd_bench_map_unmap_loop_in_place(int fd, uint32_t ioas_id, uint64_t va, uint64_t length, uint64_t iova, uint64_t iterations);
/* IOMMU_IOAS_MAP_FILE of [start, start + length) of the memfd `file` at a fixed iova, then
 * IOMMU_IOAS_UNMAP of it, `iterations` times; returns how many of the calls failed. */
uint64_t ciommufd_bench_map_file_unmap_loop_libc(int fd, uint32_t ioas_id, int file, uint64_t start, uint64_t length, uint64_t iova, uint64_t iterations);
uint64_t ciommufd_bench_map_file_unmap_loop_in_place(int fd, uint32_t ioas_id, int file, uint64_t start, uint64_t length, uint64_t iova, uint64_t iterations);

/* Heap allocations and Swift retain/release calls between begin and end, on every thread. */
struct ciommufd_bench_counts { uint64_t allocations, retains, releases; };
void ciommufd_bench_counting_install(void);
void ciommufd_bench_counting_begin(void);
struct ciommufd_bench_counts ciommufd_bench_counting_end(void);

/* Pins the calling thread to the CPU it is running on; returns that CPU, or -1 (errno set). */
int ciommufd_bench_pin_to_current_cpu(void);

/* The C reference IOVA allocator (the algorithm of IOVAAllocator.swift). */
#include <stddef.h>
struct ciommufd_iova_reference;
struct ciommufd_iova_reference *ciommufd_iova_reference_create(const uint64_t *starts, const uint64_t *lasts, size_t count, uint64_t alignment);
void ciommufd_iova_reference_destroy(struct ciommufd_iova_reference *allocator);
uint64_t ciommufd_iova_reference_allocate(struct ciommufd_iova_reference *allocator, uint64_t length);
int ciommufd_iova_reference_free(struct ciommufd_iova_reference *allocator, uint64_t start, uint64_t length);
void ciommufd_iova_reference_release_quarantine(struct ciommufd_iova_reference *allocator);

#endif
