/*
 * Volatile MMIO accessors for mmap'ed device BARs. Swift has no volatile
 * loads and stores; these keep every access a single access of the given
 * width, in program order, as device registers require.
 */
#ifndef CIOMMUFD_MMIO_H
#define CIOMMUFD_MMIO_H

#include <stdint.h>

static inline uint8_t ciommufd_mmio_read8(const void *base, uint64_t offset) {
    return *(const volatile uint8_t *)((const char *)base + offset);
}
static inline uint16_t ciommufd_mmio_read16(const void *base, uint64_t offset) {
    return *(const volatile uint16_t *)((const char *)base + offset);
}
static inline uint32_t ciommufd_mmio_read32(const void *base, uint64_t offset) {
    return *(const volatile uint32_t *)((const char *)base + offset);
}
static inline uint64_t ciommufd_mmio_read64(const void *base, uint64_t offset) {
    return *(const volatile uint64_t *)((const char *)base + offset);
}
static inline void ciommufd_mmio_write8(void *base, uint64_t offset, uint8_t value) {
    *(volatile uint8_t *)((char *)base + offset) = value;
}
static inline void ciommufd_mmio_write16(void *base, uint64_t offset, uint16_t value) {
    *(volatile uint16_t *)((char *)base + offset) = value;
}
static inline void ciommufd_mmio_write32(void *base, uint64_t offset, uint32_t value) {
    *(volatile uint32_t *)((char *)base + offset) = value;
}
static inline void ciommufd_mmio_write64(void *base, uint64_t offset, uint64_t value) {
    *(volatile uint64_t *)((char *)base + offset) = value;
}

#endif
