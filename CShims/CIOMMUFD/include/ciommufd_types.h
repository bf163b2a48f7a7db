/* Fixed-width types and the ioctl number encoding used by the uAPI definitions. */
#ifndef CIOMMUFD_TYPES_H
#define CIOMMUFD_TYPES_H

#if defined(_UAPI_IOMMUFD_H) || defined(_UAPI_VFIO_H) || defined(VFIO_H) || defined(_IOMMUFD_H)
#error "CIOMMUFD carries its own iommufd/VFIO definitions; do not include the kernel's uAPI headers in the same translation unit"
#endif

#include <stdint.h>
#include <stddef.h>

typedef uint8_t  ciommufd_u8;
typedef uint16_t ciommufd_u16;
typedef uint32_t ciommufd_u32;
typedef int32_t  ciommufd_s32;
typedef uint64_t ciommufd_u64 __attribute__((aligned(8)));

/* asm-generic ioctl encoding: nr 0-7, type 8-15, size 16-29, dir 30-31. */
#define CIOMMUFD_IOC_NONE 0U
#define CIOMMUFD_IOC(dir, type, nr, size) \
    ((unsigned long)(((dir) << 30) | ((size) << 16) | ((type) << 8) | (nr)))
#define CIOMMUFD_IO(type, nr) CIOMMUFD_IOC(CIOMMUFD_IOC_NONE, (type), (nr), 0U)

#endif
