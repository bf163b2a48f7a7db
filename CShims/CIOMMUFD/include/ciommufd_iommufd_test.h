/*
 * TEST-ONLY: the iommufd selftest command (IOMMU_TEST_CMD, nr 0xa0).
 *
 * Only kernels built with CONFIG_IOMMUFD_TEST answer it. It creates mock
 * devices and mock domains inside the real kernel, so the same tests can run
 * against MockKernel and a real kernel. Never use it in production code.
 */
#ifndef CIOMMUFD_IOMMUFD_TEST_H
#define CIOMMUFD_IOMMUFD_TEST_H

#include "ciommufd_types.h"

static const unsigned long IOMMU_TEST_CMD = CIOMMUFD_IO(0x3b, 0x80 + 32);

static const uint32_t IOMMU_TEST_OP_ADD_RESERVED = 1;
static const uint32_t IOMMU_TEST_OP_MOCK_DOMAIN = 2;
static const uint32_t IOMMU_TEST_OP_MD_CHECK_MAP = 3;
static const uint32_t IOMMU_TEST_OP_MD_CHECK_REFS = 4;
static const uint32_t IOMMU_TEST_OP_CREATE_ACCESS = 5;
static const uint32_t IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT = 9;
static const uint32_t IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE = 10;
static const uint32_t IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS = 12;
static const uint32_t IOMMU_TEST_OP_DIRTY = 13;
static const uint32_t IOMMU_TEST_OP_MD_CHECK_IOTLB = 14;
static const uint32_t IOMMU_TEST_OP_TRIGGER_IOPF = 15;
static const uint32_t IOMMU_TEST_OP_DEV_CHECK_CACHE = 16;
static const uint32_t IOMMU_TEST_OP_TRIGGER_VEVENT = 17;
static const uint32_t IOMMU_TEST_OP_PASID_ATTACH = 18;
static const uint32_t IOMMU_TEST_OP_PASID_REPLACE = 19;
static const uint32_t IOMMU_TEST_OP_PASID_DETACH = 20;
static const uint32_t IOMMU_TEST_OP_PASID_CHECK_HWPT = 21;
static const uint32_t IOMMU_TEST_OP_DMABUF_GET = 22;
static const uint32_t IOMMU_TEST_OP_DMABUF_REVOKE = 23;

/* Mock device flags (IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS) and the PASID width they give. */
static const uint32_t MOCK_FLAGS_DEVICE_NO_DIRTY = 1u << 0;
static const uint32_t MOCK_FLAGS_DEVICE_PASID = 1u << 2;
static const uint32_t MOCK_PASID_WIDTH = 20;
/* The PASID whose second attach the mock driver fails once with ENOMEM (replace test). */
static const uint32_t IOMMU_TEST_PASID_RESERVED = 1024;

/* The mock device's caches, cleared by vIOMMU invalidation (IOMMU_TEST_OP_DEV_CHECK_CACHE). */
static const uint32_t MOCK_DEV_CACHE_ID_MAX = 3;
static const uint32_t MOCK_DEV_CACHE_NUM = 4;
static const uint32_t IOMMU_TEST_DEV_CACHE_DEFAULT = 0xbaddad;

/* The selftest driver's nested HWPT (IOMMU_HWPT_ALLOC data) and its mock IOTLB. */
static const uint32_t IOMMU_HWPT_DATA_SELFTEST = 0xdead;
static const uint32_t IOMMU_TEST_IOTLB_DEFAULT = 0xbadbeef;
static const uint32_t MOCK_NESTED_DOMAIN_IOTLB_ID_MAX = 3;
static const uint32_t MOCK_NESTED_DOMAIN_IOTLB_NUM = 4;

struct iommu_hwpt_selftest {
    ciommufd_u32 iotlb;
    ciommufd_u32 pagetable_type;
};

/* IOMMU_HWPT_INVALIDATE entries for a selftest nested HWPT. */
static const uint32_t IOMMU_HWPT_INVALIDATE_DATA_SELFTEST = 0xdeadbeef;
static const uint32_t IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID = 0xdadbeef;
static const uint32_t IOMMU_TEST_INVALIDATE_FLAG_ALL = 1u << 0;

struct iommu_hwpt_invalidate_selftest {
    ciommufd_u32 flags;
    ciommufd_u32 iotlb_id;
};

/* The selftest driver's vIOMMU (IOMMU_VIOMMU_ALLOC type, data and invalidation). */
static const uint32_t IOMMU_VIOMMU_TYPE_SELFTEST = 0xdeadbeef;

struct iommu_viommu_selftest {
    ciommufd_u32 in_data;
    ciommufd_u32 out_data;
    ciommufd_u64 out_mmap_offset;
    ciommufd_u64 out_mmap_length;
};

static const uint32_t IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST = 0xdeadbeef;
static const uint32_t IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID = 0xdadbeef;

struct iommu_viommu_invalidate_selftest {
    ciommufd_u32 flags;
    ciommufd_u32 vdev_id;
    ciommufd_u32 cache_id;
};

/* The selftest vIOMMU's event queue and its one event (IOMMU_TEST_OP_TRIGGER_VEVENT). */
static const uint32_t IOMMU_VEVENTQ_TYPE_SELFTEST = 0xbeefbeef;

struct iommu_viommu_event_selftest {
    ciommufd_u32 virt_id;
};

/* The selftest vIOMMU's hardware queue type and how many it takes. */
static const uint32_t IOMMU_HW_QUEUE_TYPE_SELFTEST = 0xdeadbeef;
static const uint32_t IOMMU_TEST_HW_QUEUE_MAX = 2;

/* The selftest mock domain's geometry (MOCK_IOMMUPT_DEFAULT). */
static const uint64_t IOMMU_TEST_MOCK_APERTURE_START = 1ull << 24;
static const uint64_t IOMMU_TEST_MOCK_APERTURE_LAST = (1ull << 31) - 1;
static const uint64_t IOMMU_TEST_MOCK_PAGE_SIZE = 2048;

struct iommu_test_cmd {
    ciommufd_u32 size;
    ciommufd_u32 op;
    ciommufd_u32 id;
    ciommufd_u32 __reserved;
    union {
        struct {
            ciommufd_u64 start;
            ciommufd_u64 length;
        } add_reserved;
        struct {
            ciommufd_u32 out_stdev_id;
            ciommufd_u32 out_hwpt_id;
            ciommufd_u32 out_idev_id;
        } mock_domain;
        struct {
            ciommufd_u32 out_stdev_id;
            ciommufd_u32 out_hwpt_id;
            ciommufd_u32 out_idev_id;
            ciommufd_u32 dev_flags;
        } mock_domain_flags;
        struct {
            ciommufd_u32 pt_id;
        } mock_domain_replace;
        struct {
            ciommufd_u64 iova;
            ciommufd_u64 length;
            ciommufd_u64 uptr;
        } check_map;
        struct {
            ciommufd_u64 length;
            ciommufd_u64 uptr;
            ciommufd_u32 refs;
        } check_refs;
        struct {
            ciommufd_u32 limit;
        } memory_limit;
        struct {
            ciommufd_u32 flags;
            ciommufd_u64 iova;
            ciommufd_u64 length;
            ciommufd_u64 page_size;
            ciommufd_u64 uptr;        /* bitmap of the pages to mark dirty */
            ciommufd_u64 out_nr_dirty;
        } dirty;
        struct {
            ciommufd_u32 id;
            ciommufd_u32 iotlb;
        } check_iotlb;
        struct {
            ciommufd_u32 dev_id;
            ciommufd_u32 pasid;
            ciommufd_u32 grpid;
            ciommufd_u32 perm;
            ciommufd_u64 addr;
        } trigger_iopf;
        struct {
            ciommufd_u32 id;
            ciommufd_u32 cache;
        } check_dev_cache;
        struct {
            ciommufd_u32 dev_id;
        } trigger_vevent;
        struct {
            ciommufd_u32 pasid;
            ciommufd_u32 pt_id;
        } pasid_attach;
        struct {
            ciommufd_u32 pasid;
            ciommufd_u32 pt_id;
        } pasid_replace;
        struct {
            ciommufd_u32 pasid;
        } pasid_detach;
        struct {
            ciommufd_u32 pasid;
            ciommufd_u32 hwpt_id;
        } pasid_check;
        struct {
            ciommufd_u32 length;
            ciommufd_u32 open_flags;
        } dmabuf_get;
        struct {
            ciommufd_s32 dmabuf_fd;
            ciommufd_u32 revoked;
        } dmabuf_revoke;
        /* The kernel's union has further members; the largest (dirty) is 48 bytes. */
        ciommufd_u8 __union_size[48];
    };
    ciommufd_u32 last;
};

#endif
