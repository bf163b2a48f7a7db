/*
 * static inline wrappers around the system calls swift-iommufd makes.
 * Only Sources/IOMMUFDSystem/LinuxSystem.swift calls them. Each returns the
 * raw result; errno is read by the caller immediately after the call.
 */
#ifndef CIOMMUFD_SYSCALLS_H
#define CIOMMUFD_SYSCALLS_H

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * ioctl(2) issued in place: the result when it is non-negative, otherwise -errno
 * (errno itself is not touched). The system call instruction is inlined into the
 * caller rather than reached through libc's wrapper, because returning from a frame
 * that was entered before a system call is what costs most in a failing ioctl on
 * CPUs whose kernels refill or scrub the return stack buffer on the way out (a
 * mispredicted return per frame; about 48 ns for the first here, on an AMD EPYC
 * with the SRSO "Safe RET" mitigation, 5.5 ns for each next one). Other
 * architectures use libc and translate errno.
 */
static inline __attribute__((always_inline)) int ciommufd_ioctl(int fd, unsigned long request, void *argument) {
#if defined(__x86_64__)
    long result;
    __asm__ volatile("syscall"
                     : "=a"(result)
                     : "0"((long)SYS_ioctl), "D"((long)fd), "S"(request), "d"(argument)
                     : "rcx", "r11", "memory");
    return (int)result;
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = SYS_ioctl;
    register long x0 __asm__("x0") = fd;
    register long x1 __asm__("x1") = (long)request;
    register long x2 __asm__("x2") = (long)argument;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory", "cc");
    return (int)x0;
#else
    int result = ioctl(fd, request, argument);
    return result < 0 ? -errno : result;
#endif
}

static inline int ciommufd_open(const char *path, int flags, unsigned int mode) {
    return open(path, flags, (mode_t)mode);
}

static inline int ciommufd_close(int fd) {
    return close(fd);
}

static inline void *ciommufd_mmap(void *address, size_t length, int protection, int flags, int fd, long offset) {
    return mmap(address, length, protection, flags, fd, (off_t)offset);
}

static inline int ciommufd_munmap(void *address, size_t length) {
    return munmap(address, length);
}

static inline int ciommufd_memfd_create(const char *name, unsigned int flags) {
    return (int)syscall(SYS_memfd_create, name, flags);
}

static inline int ciommufd_eventfd(unsigned int initial, int flags) {
    return eventfd(initial, flags);
}

static const unsigned int CIOMMUFD_MFD_CLOEXEC = 0x0001U;
static const unsigned int CIOMMUFD_MFD_ALLOW_SEALING = 0x0002U;
static const unsigned int CIOMMUFD_MFD_HUGETLB = 0x0004U;
/* With MFD_HUGETLB, bits 26-31 carry log2 of the page size (MFD_HUGE_SHIFT). */
static const unsigned int CIOMMUFD_MFD_HUGE_SHIFT = 26U;
static const unsigned int CIOMMUFD_MFD_HUGE_MASK = 0x3fU;
/* mmap(2) flag bits; MAP_HUGETLB takes the same page-size encoding. */
static const int CIOMMUFD_MAP_HUGETLB = 0x40000;
static const int CIOMMUFD_MAP_POPULATE = 0x8000;
static const int CIOMMUFD_MAP_NORESERVE = 0x4000;
/* madvise(2) advice values (MADV_POPULATE_WRITE is Linux 5.14+). */
static const int CIOMMUFD_MADV_HUGEPAGE = 14;
static const int CIOMMUFD_MADV_NOHUGEPAGE = 15;
static const int CIOMMUFD_MADV_POPULATE_READ = 22;
static const int CIOMMUFD_MADV_POPULATE_WRITE = 23;
/* mbind(2) with a one-word node mask (nodes 0-63): the raw system call, as libnuma's
 * mbind() issues it, so the core needs no libnuma. */
static inline long ciommufd_mbind(void *start, unsigned long length, int mode,
                                  unsigned long node_mask, unsigned flags) {
    return syscall(SYS_mbind, start, length, mode, node_mask ? &node_mask : 0,
                   node_mask ? sizeof(node_mask) * 8 + 1 : 0, flags);
}

/* move_pages(2) with no target nodes: reports the node of each page in status. */
static inline long ciommufd_query_page_nodes(unsigned long count, void **pages, int *status) {
    return syscall(SYS_move_pages, 0, count, pages, (const int *)0, status, 0);
}

/* NUMA memory policies (set_mempolicy(2)/mbind(2)). */
static const int CIOMMUFD_MPOL_DEFAULT = 0;
static const int CIOMMUFD_MPOL_PREFERRED = 1;
static const int CIOMMUFD_MPOL_BIND = 2;
static const unsigned int CIOMMUFD_MPOL_MF_STRICT = 1U;
static const unsigned int CIOMMUFD_MPOL_MF_MOVE = 2U;

/* RLIMIT_MEMLOCK; returns 0 and fills current/maximum (RLIM_INFINITY = UINT64_MAX) or -1. */
static inline int ciommufd_getrlimit_memlock(uint64_t *current, uint64_t *maximum) {
    struct rlimit limit;
    int result = getrlimit(RLIMIT_MEMLOCK, &limit);
    if (result == 0) {
        *current = limit.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)limit.rlim_cur;
        *maximum = limit.rlim_max == RLIM_INFINITY ? UINT64_MAX : (uint64_t)limit.rlim_max;
    }
    return result;
}

static inline int ciommufd_setrlimit_memlock(uint64_t current, uint64_t maximum) {
    struct rlimit limit;
    limit.rlim_cur = current == UINT64_MAX ? RLIM_INFINITY : (rlim_t)current;
    limit.rlim_max = maximum == UINT64_MAX ? RLIM_INFINITY : (rlim_t)maximum;
    return setrlimit(RLIMIT_MEMLOCK, &limit);
}

static inline __attribute__((always_inline)) int ciommufd_errno(void) {
    return errno;
}

static inline void *ciommufd_map_failed(void) {
    return MAP_FAILED;
}

#endif
