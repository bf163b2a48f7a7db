/*
 * CIOMMUFD: the C boundary of swift-iommufd.
 *
 * Our own definitions of the Linux 7.3 iommufd and VFIO user-space ABI
 * (written from the documented layouts, checked by the ABI tests and by
 * _Static_assert in ciommufd.c), the ioctl request numbers as constants Swift
 * can import, and static inline wrappers around the system calls.
 *
 * The host's <linux/vfio.h> and <linux/iommufd.h> are never included: the
 * installed 6.1 headers lack most of this ABI, and mixing both would shadow
 * one set of definitions with the other.
 */
#ifndef CIOMMUFD_H
#define CIOMMUFD_H

#include "ciommufd_types.h"
#include "ciommufd_iommufd.h"
#include "ciommufd_vfio.h"
#include "ciommufd_iommufd_test.h"
#include "ciommufd_syscalls.h"
#include "ciommufd_mmio.h"
#include "ciommufd_barrier.h"
#include "ciommufd_fork.h"

#endif
