/*
 * Memory barriers for user-space drivers, with the kernel's names and meanings
 * (Documentation/memory-barriers.txt) and libvfn's instructions
 * (include/vfn/support/barrier.h). Swift has no fences that reach device
 * memory; these are the only ones the project uses.
 *
 *   ciommufd_mb       full barrier: every load and store before it, to memory
 *                     or to a BAR, is done before any after it.
 *   ciommufd_wmb      stores before it (normal memory and MMIO) are visible
 *                     before stores after it: the barrier before a doorbell.
 *   ciommufd_rmb      loads before it (normal memory and MMIO) complete
 *                     before loads after it: the barrier after a completion
 *                     register is read and before the DMA data is.
 *   ciommufd_dma_wmb  orders stores to coherent DMA memory among themselves,
 *                     as the device sees them (a descriptor's body before its
 *                     "owned by the device" bit). Not enough before MMIO.
 *   ciommufd_dma_rmb  orders loads from coherent DMA memory among themselves
 *                     (a completion's phase/valid bit before its body).
 *   ciommufd_barrier  compiler barrier only: no instruction.
 *
 * x86-64 is TSO: stores are not reordered with stores, nor loads with loads,
 * so the DMA barriers are compiler barriers; sfence/lfence/mfence are kept
 * for wmb/rmb/mb because they also order write-combining mappings and
 * non-temporal stores. aarch64 is weakly ordered: DSB for the barriers that
 * must reach MMIO, DMB over the outer-shareable domain for DMA memory.
 *
 * Every barrier also has a "memory" clobber, so neither clang nor Swift (which
 * sees an opaque C call) moves memory accesses across it.
 */
#ifndef CIOMMUFD_BARRIER_H
#define CIOMMUFD_BARRIER_H

static inline __attribute__((always_inline)) void ciommufd_barrier(void) {
    __asm__ __volatile__("" ::: "memory");
}

#if defined(__x86_64__)

static inline __attribute__((always_inline)) void ciommufd_mb(void) {
    __asm__ __volatile__("mfence" ::: "memory");
}
static inline __attribute__((always_inline)) void ciommufd_wmb(void) {
    __asm__ __volatile__("sfence" ::: "memory");
}
static inline __attribute__((always_inline)) void ciommufd_rmb(void) {
    __asm__ __volatile__("lfence" ::: "memory");
}
static inline __attribute__((always_inline)) void ciommufd_dma_wmb(void) {
    __asm__ __volatile__("" ::: "memory");
}
static inline __attribute__((always_inline)) void ciommufd_dma_rmb(void) {
    __asm__ __volatile__("" ::: "memory");
}

#elif defined(__aarch64__)

static inline __attribute__((always_inline)) void ciommufd_mb(void) {
    __asm__ __volatile__("dsb sy" ::: "memory");
}
static inline __attribute__((always_inline)) void ciommufd_wmb(void) {
    __asm__ __volatile__("dsb st" ::: "memory");
}
static inline __attribute__((always_inline)) void ciommufd_rmb(void) {
    __asm__ __volatile__("dsb ld" ::: "memory");
}
static inline __attribute__((always_inline)) void ciommufd_dma_wmb(void) {
    __asm__ __volatile__("dmb oshst" ::: "memory");
}
static inline __attribute__((always_inline)) void ciommufd_dma_rmb(void) {
    __asm__ __volatile__("dmb oshld" ::: "memory");
}

#else
#error "ciommufd_barrier.h: no barriers for this architecture (x86-64 and aarch64 only)"
#endif

#endif
