/*
 * The VFIO user-space ABI at the Linux 7.3 level: the device cdev
 * (/dev/vfio/devices/vfioN bound to an iommufd), the device ioctls shared with
 * the group path, and the legacy container (/dev/vfio/vfio) + group
 * (/dev/vfio/N) + type1 IOMMU path.
 *
 * VFIO ioctls are _IO(';', 100 + n) and carry `argsz` instead of `size`.
 */
#ifndef CIOMMUFD_VFIO_H
#define CIOMMUFD_VFIO_H

#include "ciommufd_types.h"

#define CIOMMUFD_VFIO_TYPE 0x3b /* ';' */
#define CIOMMUFD_VFIO_BASE 100

static const int VFIO_API_VERSION = 0;

/* Extensions answered by VFIO_CHECK_EXTENSION; the first ones are IOMMU models for VFIO_SET_IOMMU. */
static const unsigned long VFIO_TYPE1_IOMMU = 1;
static const unsigned long VFIO_SPAPR_TCE_IOMMU = 2;
static const unsigned long VFIO_TYPE1v2_IOMMU = 3;
static const unsigned long VFIO_DMA_CC_IOMMU = 4;
static const unsigned long VFIO_EEH = 5;
static const unsigned long __VFIO_RESERVED_TYPE1_NESTING_IOMMU = 6; /* 7.3 retired VFIO_TYPE1_NESTING_IOMMU; the number stays reserved */
static const unsigned long VFIO_SPAPR_TCE_v2_IOMMU = 7;
static const unsigned long VFIO_NOIOMMU_IOMMU = 8;
static const unsigned long VFIO_UNMAP_ALL = 9;
static const unsigned long VFIO_UPDATE_VADDR = 10;

/* Request numbers: container and group. */
static const unsigned long VFIO_GET_API_VERSION = CIOMMUFD_IO(CIOMMUFD_VFIO_TYPE, CIOMMUFD_VFIO_BASE + 0);
static const unsigned long VFIO_CHECK_EXTENSION = CIOMMUFD_IO(CIOMMUFD_VFIO_TYPE, CIOMMUFD_VFIO_BASE + 1);
static const unsigned long VFIO_SET_IOMMU = CIOMMUFD_IO(CIOMMUFD_VFIO_TYPE, CIOMMUFD_VFIO_BASE + 2);
static const unsigned long VFIO_GROUP_GET_STATUS = CIOMMUFD_IO(CIOMMUFD_VFIO_TYPE, CIOMMUFD_VFIO_BASE + 3);
static const unsigned long VFIO_GROUP_SET_CONTAINER = CIOMMUFD_IO(CIOMMUFD_VFIO_TYPE, CIOMMUFD_VFIO_BASE + 4);
static const unsigned long VFIO_GROUP_UNSET_CONTAINER = CIOMMUFD_IO(CIOMMUFD_VFIO_TYPE, CIOMMUFD_VFIO_BASE + 5);
static const unsigned long VFIO_GROUP_GET_DEVICE_FD = CIOMMUFD_IO(CIOMMUFD_VFIO_TYPE, CIOMMUFD_VFIO_BASE + 6);
/* Request numbers: device (cdev or group-obtained fd). */
static const unsigned long VFIO_DEVICE_GET_INFO = CIOMMUFD_IO(CIOMMUFD_VFIO_TYPE, CIOMMUFD_VFIO_BASE + 7);
static const unsigned long VFIO_DEVICE_GET_REGION_INFO = CIOMMUFD_IO(CIOMMUFD_VFIO_TYPE, CIOMMUFD_VFIO_BASE + 8);
static const unsigned long VFIO_DEVICE_GET_IRQ_INFO = CIOMMUFD_IO(CIOMMUFD_VFIO_TYPE, CIOMMUFD_VFIO_BASE + 9);
static const unsigned long VFIO_DEVICE_SET_IRQS = CIOMMUFD_IO(CIOMMUFD_VFIO_TYPE, CIOMMUFD_VFIO_BASE + 10);
static const unsigned long VFIO_DEVICE_RESET = CIOMMUFD_IO(CIOMMUFD_VFIO_TYPE, CIOMMUFD_VFIO_BASE + 11);
static const unsigned long VFIO_DEVICE_GET_PCI_HOT_RESET_INFO = CIOMMUFD_IO(CIOMMUFD_VFIO_TYPE, CIOMMUFD_VFIO_BASE + 12);
static const unsigned long VFIO_DEVICE_PCI_HOT_RESET = CIOMMUFD_IO(CIOMMUFD_VFIO_TYPE, CIOMMUFD_VFIO_BASE + 13);
static const unsigned long VFIO_DEVICE_QUERY_GFX_PLANE = CIOMMUFD_IO(CIOMMUFD_VFIO_TYPE, CIOMMUFD_VFIO_BASE + 14);
static const unsigned long VFIO_DEVICE_GET_GFX_DMABUF = CIOMMUFD_IO(CIOMMUFD_VFIO_TYPE, CIOMMUFD_VFIO_BASE + 15);
static const unsigned long VFIO_DEVICE_IOEVENTFD = CIOMMUFD_IO(CIOMMUFD_VFIO_TYPE, CIOMMUFD_VFIO_BASE + 16);
static const unsigned long VFIO_DEVICE_FEATURE = CIOMMUFD_IO(CIOMMUFD_VFIO_TYPE, CIOMMUFD_VFIO_BASE + 17);
static const unsigned long VFIO_DEVICE_BIND_IOMMUFD = CIOMMUFD_IO(CIOMMUFD_VFIO_TYPE, CIOMMUFD_VFIO_BASE + 18);
static const unsigned long VFIO_DEVICE_ATTACH_IOMMUFD_PT = CIOMMUFD_IO(CIOMMUFD_VFIO_TYPE, CIOMMUFD_VFIO_BASE + 19);
static const unsigned long VFIO_DEVICE_DETACH_IOMMUFD_PT = CIOMMUFD_IO(CIOMMUFD_VFIO_TYPE, CIOMMUFD_VFIO_BASE + 20);
static const unsigned long VFIO_MIG_GET_PRECOPY_INFO = CIOMMUFD_IO(CIOMMUFD_VFIO_TYPE, CIOMMUFD_VFIO_BASE + 21);
/* Request numbers: type1 IOMMU on the container fd (they reuse device numbers on another fd). */
static const unsigned long VFIO_IOMMU_GET_INFO = CIOMMUFD_IO(CIOMMUFD_VFIO_TYPE, CIOMMUFD_VFIO_BASE + 12);
static const unsigned long VFIO_IOMMU_MAP_DMA = CIOMMUFD_IO(CIOMMUFD_VFIO_TYPE, CIOMMUFD_VFIO_BASE + 13);
static const unsigned long VFIO_IOMMU_UNMAP_DMA = CIOMMUFD_IO(CIOMMUFD_VFIO_TYPE, CIOMMUFD_VFIO_BASE + 14);
static const unsigned long VFIO_IOMMU_DIRTY_PAGES = CIOMMUFD_IO(CIOMMUFD_VFIO_TYPE, CIOMMUFD_VFIO_BASE + 17);

/* Every *_info answer may carry a chain of capabilities; `next` is an offset from the start of the struct, 0 ends it. */
struct vfio_info_cap_header {
    ciommufd_u16 id;
    ciommufd_u16 version;
    ciommufd_u32 next;
};

/* --- groups ------------------------------------------------------------ */
static const uint32_t VFIO_GROUP_FLAGS_VIABLE = 1u << 0;
static const uint32_t VFIO_GROUP_FLAGS_CONTAINER_SET = 1u << 1;

struct vfio_group_status {
    ciommufd_u32 argsz;
    ciommufd_u32 flags;
};

/* --- device info --------------------------------------------------------- */
static const uint32_t VFIO_DEVICE_FLAGS_RESET = 1u << 0;
static const uint32_t VFIO_DEVICE_FLAGS_PCI = 1u << 1;
static const uint32_t VFIO_DEVICE_FLAGS_PLATFORM = 1u << 2;
static const uint32_t VFIO_DEVICE_FLAGS_AMBA = 1u << 3;
static const uint32_t VFIO_DEVICE_FLAGS_CCW = 1u << 4;
static const uint32_t VFIO_DEVICE_FLAGS_AP = 1u << 5;
static const uint32_t VFIO_DEVICE_FLAGS_FSL_MC = 1u << 6;
static const uint32_t VFIO_DEVICE_FLAGS_CAPS = 1u << 7;
static const uint32_t VFIO_DEVICE_FLAGS_CDX = 1u << 8;

struct vfio_device_info {
    ciommufd_u32 argsz;
    ciommufd_u32 flags;
    ciommufd_u32 num_regions;
    ciommufd_u32 num_irqs;
    ciommufd_u32 cap_offset;
    ciommufd_u32 pad;
};

static const uint16_t VFIO_DEVICE_INFO_CAP_ZPCI_BASE = 1;
static const uint16_t VFIO_DEVICE_INFO_CAP_ZPCI_GROUP = 2;
static const uint16_t VFIO_DEVICE_INFO_CAP_ZPCI_UTIL = 3;
static const uint16_t VFIO_DEVICE_INFO_CAP_ZPCI_PFIP = 4;
static const uint16_t VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP = 5;

/* --- regions ------------------------------------------------------------- */
static const uint32_t VFIO_REGION_INFO_FLAG_READ = 1u << 0;
static const uint32_t VFIO_REGION_INFO_FLAG_WRITE = 1u << 1;
static const uint32_t VFIO_REGION_INFO_FLAG_MMAP = 1u << 2;
static const uint32_t VFIO_REGION_INFO_FLAG_CAPS = 1u << 3;

struct vfio_region_info {
    ciommufd_u32 argsz;
    ciommufd_u32 flags;
    ciommufd_u32 index;
    ciommufd_u32 cap_offset;
    ciommufd_u64 size;
    ciommufd_u64 offset;              /* file offset of the region on the device fd */
};

static const uint16_t VFIO_REGION_INFO_CAP_SPARSE_MMAP = 1;
static const uint16_t VFIO_REGION_INFO_CAP_TYPE = 2;
static const uint16_t VFIO_REGION_INFO_CAP_MSIX_MAPPABLE = 3;

struct vfio_region_sparse_mmap_area {
    ciommufd_u64 offset;              /* from the start of the region */
    ciommufd_u64 size;
};

struct vfio_region_info_cap_sparse_mmap {
    struct vfio_info_cap_header header;
    ciommufd_u32 nr_areas;
    ciommufd_u32 reserved;
    struct vfio_region_sparse_mmap_area areas[];
};

struct vfio_region_info_cap_type {
    struct vfio_info_cap_header header;
    ciommufd_u32 type;
    ciommufd_u32 subtype;
};

/* PCI region indexes. */
static const uint32_t VFIO_PCI_BAR0_REGION_INDEX = 0;
static const uint32_t VFIO_PCI_BAR1_REGION_INDEX = 1;
static const uint32_t VFIO_PCI_BAR2_REGION_INDEX = 2;
static const uint32_t VFIO_PCI_BAR3_REGION_INDEX = 3;
static const uint32_t VFIO_PCI_BAR4_REGION_INDEX = 4;
static const uint32_t VFIO_PCI_BAR5_REGION_INDEX = 5;
static const uint32_t VFIO_PCI_ROM_REGION_INDEX = 6;
static const uint32_t VFIO_PCI_CONFIG_REGION_INDEX = 7;
static const uint32_t VFIO_PCI_VGA_REGION_INDEX = 8;
static const uint32_t VFIO_PCI_NUM_REGIONS = 9;

/* --- interrupts ---------------------------------------------------------- */
static const uint32_t VFIO_IRQ_INFO_EVENTFD = 1u << 0;
static const uint32_t VFIO_IRQ_INFO_MASKABLE = 1u << 1;
static const uint32_t VFIO_IRQ_INFO_AUTOMASKED = 1u << 2;
static const uint32_t VFIO_IRQ_INFO_NORESIZE = 1u << 3;

struct vfio_irq_info {
    ciommufd_u32 argsz;
    ciommufd_u32 flags;
    ciommufd_u32 index;
    ciommufd_u32 count;
};

static const uint32_t VFIO_IRQ_SET_DATA_NONE = 1u << 0;
static const uint32_t VFIO_IRQ_SET_DATA_BOOL = 1u << 1;
static const uint32_t VFIO_IRQ_SET_DATA_EVENTFD = 1u << 2;
static const uint32_t VFIO_IRQ_SET_ACTION_MASK = 1u << 3;
static const uint32_t VFIO_IRQ_SET_ACTION_UNMASK = 1u << 4;
static const uint32_t VFIO_IRQ_SET_ACTION_TRIGGER = 1u << 5;

struct vfio_irq_set {
    ciommufd_u32 argsz;
    ciommufd_u32 flags;
    ciommufd_u32 index;
    ciommufd_u32 start;
    ciommufd_u32 count;
    ciommufd_u8 data[];               /* count bools or count s32 eventfds */
};

/* PCI IRQ indexes. */
static const uint32_t VFIO_PCI_INTX_IRQ_INDEX = 0;
static const uint32_t VFIO_PCI_MSI_IRQ_INDEX = 1;
static const uint32_t VFIO_PCI_MSIX_IRQ_INDEX = 2;
static const uint32_t VFIO_PCI_ERR_IRQ_INDEX = 3;
static const uint32_t VFIO_PCI_REQ_IRQ_INDEX = 4;
static const uint32_t VFIO_PCI_NUM_IRQS = 5;

/* --- reset --------------------------------------------------------------- */
static const uint32_t VFIO_PCI_HOT_RESET_FLAG_DEV_ID = 1u << 0;
static const uint32_t VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED = 1u << 1;
static const uint32_t VFIO_PCI_DEVID_OWNED = 0;
static const uint32_t VFIO_PCI_DEVID_NOT_OWNED = 0xffffffffu;

struct vfio_pci_dependent_device {
    union {
        ciommufd_u32 group_id;
        ciommufd_u32 devid;           /* with VFIO_PCI_HOT_RESET_FLAG_DEV_ID */
    };
    ciommufd_u16 segment;
    ciommufd_u8 bus;
    ciommufd_u8 devfn;
};

struct vfio_pci_hot_reset_info {
    ciommufd_u32 argsz;
    ciommufd_u32 flags;
    ciommufd_u32 count;
    struct vfio_pci_dependent_device devices[];
};

struct vfio_pci_hot_reset {
    ciommufd_u32 argsz;
    ciommufd_u32 flags;
    ciommufd_u32 count;
    ciommufd_s32 group_fds[];         /* empty for the cdev (iommufd) form */
};

/* --- ioeventfd ----------------------------------------------------------- */
static const uint32_t VFIO_DEVICE_IOEVENTFD_8 = 1u << 0;
static const uint32_t VFIO_DEVICE_IOEVENTFD_16 = 1u << 1;
static const uint32_t VFIO_DEVICE_IOEVENTFD_32 = 1u << 2;
static const uint32_t VFIO_DEVICE_IOEVENTFD_64 = 1u << 3;

struct vfio_device_ioeventfd {
    ciommufd_u32 argsz;
    ciommufd_u32 flags;
    ciommufd_u64 offset;
    ciommufd_u64 data;
    ciommufd_s32 fd;
    ciommufd_u32 reserved;
};

/* --- device features ----------------------------------------------------- */
static const uint32_t VFIO_DEVICE_FEATURE_MASK = 0xffffu;
static const uint32_t VFIO_DEVICE_FEATURE_GET = 1u << 16;
static const uint32_t VFIO_DEVICE_FEATURE_SET = 1u << 17;
static const uint32_t VFIO_DEVICE_FEATURE_PROBE = 1u << 18;

static const uint32_t VFIO_DEVICE_FEATURE_PCI_VF_TOKEN = 0;
static const uint32_t VFIO_DEVICE_FEATURE_MIGRATION = 1;
static const uint32_t VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE = 2;
static const uint32_t VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY = 3;
static const uint32_t VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP = 4;
static const uint32_t VFIO_DEVICE_FEATURE_LOW_POWER_EXIT = 5;
static const uint32_t VFIO_DEVICE_FEATURE_DMA_LOGGING_START = 6;
static const uint32_t VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP = 7;
static const uint32_t VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT = 8;
static const uint32_t VFIO_DEVICE_FEATURE_MIG_DATA_SIZE = 9;
static const uint32_t VFIO_DEVICE_FEATURE_BUS_MASTER = 10;
static const uint32_t VFIO_DEVICE_FEATURE_DMA_BUF = 11;
static const uint32_t VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2 = 12;
static const uint32_t VFIO_DEVICE_FEATURE_ZPCI_ERROR = 13;

struct vfio_device_feature {
    ciommufd_u32 argsz;
    ciommufd_u32 flags;               /* feature id | GET/SET/PROBE */
    ciommufd_u8 data[];
};

struct vfio_region_dma_range {
    ciommufd_u64 offset;
    ciommufd_u64 length;
};

/* Payload of VFIO_DEVICE_FEATURE_DMA_BUF (SET): export BAR slices as a dma-buf fd. */
struct vfio_device_feature_dma_buf {
    ciommufd_u32 region_index;
    ciommufd_u32 open_flags;
    ciommufd_u32 flags;
    ciommufd_u32 nr_ranges;
    struct vfio_region_dma_range dma_ranges[];
};

/* --- cdev + iommufd ------------------------------------------------------ */
static const uint32_t VFIO_DEVICE_BIND_FLAG_TOKEN = 1u << 0;

struct vfio_device_bind_iommufd {
    ciommufd_u32 argsz;
    ciommufd_u32 flags;
    ciommufd_s32 iommufd;
    ciommufd_u32 out_devid;
    ciommufd_u64 token_uuid_ptr;      /* 16-byte VF token, with VFIO_DEVICE_BIND_FLAG_TOKEN */
};

static const uint32_t VFIO_DEVICE_ATTACH_PASID = 1u << 0;

struct vfio_device_attach_iommufd_pt {
    ciommufd_u32 argsz;
    ciommufd_u32 flags;
    ciommufd_u32 pt_id;               /* in: IOAS or HWPT; out: the HWPT actually attached */
    ciommufd_u32 pasid;
};

static const uint32_t VFIO_DEVICE_DETACH_PASID = 1u << 0;

struct vfio_device_detach_iommufd_pt {
    ciommufd_u32 argsz;
    ciommufd_u32 flags;
    ciommufd_u32 pasid;
};

/* --- legacy type1 IOMMU -------------------------------------------------- */
static const uint32_t VFIO_IOMMU_INFO_PGSIZES = 1u << 0;
static const uint32_t VFIO_IOMMU_INFO_CAPS = 1u << 1;

struct vfio_iommu_type1_info {
    ciommufd_u32 argsz;
    ciommufd_u32 flags;
    ciommufd_u64 iova_pgsizes;
    ciommufd_u32 cap_offset;
    ciommufd_u32 pad;
};

static const uint16_t VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1;
static const uint16_t VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION = 2;
static const uint16_t VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = 3;

struct vfio_iova_range {
    ciommufd_u64 start;
    ciommufd_u64 end;                 /* inclusive */
};

struct vfio_iommu_type1_info_cap_iova_range {
    struct vfio_info_cap_header header;
    ciommufd_u32 nr_iovas;
    ciommufd_u32 reserved;
    struct vfio_iova_range iova_ranges[];
};

struct vfio_iommu_type1_info_cap_migration {
    struct vfio_info_cap_header header;
    ciommufd_u32 flags;
    ciommufd_u64 pgsize_bitmap;
    ciommufd_u64 max_dirty_bitmap_size;
};

struct vfio_iommu_type1_info_dma_avail {
    struct vfio_info_cap_header header;
    ciommufd_u32 avail;
};

static const uint32_t VFIO_DMA_MAP_FLAG_READ = 1u << 0;
static const uint32_t VFIO_DMA_MAP_FLAG_WRITE = 1u << 1;
static const uint32_t VFIO_DMA_MAP_FLAG_VADDR = 1u << 2;

struct vfio_iommu_type1_dma_map {
    ciommufd_u32 argsz;
    ciommufd_u32 flags;
    ciommufd_u64 vaddr;
    ciommufd_u64 iova;
    ciommufd_u64 size;
};

struct vfio_bitmap {
    ciommufd_u64 pgsize;
    ciommufd_u64 size;                /* bytes */
    ciommufd_u64 data;                /* user pointer */
};

static const uint32_t VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP = 1u << 0;
static const uint32_t VFIO_DMA_UNMAP_FLAG_ALL = 1u << 1;
static const uint32_t VFIO_DMA_UNMAP_FLAG_VADDR = 1u << 2;

struct vfio_iommu_type1_dma_unmap {
    ciommufd_u32 argsz;
    ciommufd_u32 flags;
    ciommufd_u64 iova;
    ciommufd_u64 size;                /* in: bytes to unmap; out: bytes unmapped */
    ciommufd_u8 data[];
};

static const uint32_t VFIO_IOMMU_DIRTY_PAGES_FLAG_START = 1u << 0;
static const uint32_t VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP = 1u << 1;
static const uint32_t VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP = 1u << 2;

struct vfio_iommu_type1_dirty_bitmap {
    ciommufd_u32 argsz;
    ciommufd_u32 flags;
    ciommufd_u8 data[];
};

struct vfio_iommu_type1_dirty_bitmap_get {
    ciommufd_u64 iova;
    ciommufd_u64 size;
    struct vfio_bitmap bitmap;
};

#endif
