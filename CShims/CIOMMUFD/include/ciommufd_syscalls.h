/*
 * static inline wrappers around the system calls swift-iommufd makes.
 * Only Sources/IOMMUFD/System/LinuxSystem.swift calls them. Each returns the
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

static inline int ciommufd_ioctl(int fd, unsigned long request, void *argument) {
    return ioctl(fd, request, argument);
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

static inline int ciommufd_errno(void) {
    return errno;
}

static inline void *ciommufd_map_failed(void) {
    return MAP_FAILED;
}

#endif
