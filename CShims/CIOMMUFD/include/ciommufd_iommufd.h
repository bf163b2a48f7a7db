/*
 * The iommufd user-space ABI (/dev/iommu) at the Linux 7.3 level.
 *
 * Every command is an ioctl on the /dev/iommu fd with no size or direction
 * bits: _IO(';', 0x80 + n). Every command struct starts with `size`, which
 * the caller sets to sizeof(struct). The kernel accepts a shorter (older)
 * struct down to a per-command minimum, rejects a longer one whose unknown
 * tail is non-zero (E2BIG), and answers ENOTTY for a command it lacks.
 * All 64-bit fields are 8-byte aligned on every architecture.
 */
#ifndef CIOMMUFD_IOMMUFD_H
#define CIOMMUFD_IOMMUFD_H

#include "ciommufd_types.h"

#define CIOMMUFD_IOMMUFD_TYPE 0x3b /* ';' */

/* Command numbers (the low byte of the request). */
static const unsigned int IOMMUFD_CMD_BASE = 0x80;
static const unsigned int IOMMUFD_CMD_DESTROY = 0x80;
static const unsigned int IOMMUFD_CMD_IOAS_ALLOC = 0x81;
static const unsigned int IOMMUFD_CMD_IOAS_ALLOW_IOVAS = 0x82;
static const unsigned int IOMMUFD_CMD_IOAS_COPY = 0x83;
static const unsigned int IOMMUFD_CMD_IOAS_IOVA_RANGES = 0x84;
static const unsigned int IOMMUFD_CMD_IOAS_MAP = 0x85;
static const unsigned int IOMMUFD_CMD_IOAS_UNMAP = 0x86;
static const unsigned int IOMMUFD_CMD_OPTION = 0x87;
static const unsigned int IOMMUFD_CMD_VFIO_IOAS = 0x88;
static const unsigned int IOMMUFD_CMD_HWPT_ALLOC = 0x89;
static const unsigned int IOMMUFD_CMD_GET_HW_INFO = 0x8a;
static const unsigned int IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING = 0x8b;
static const unsigned int IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP = 0x8c;
static const unsigned int IOMMUFD_CMD_HWPT_INVALIDATE = 0x8d;
static const unsigned int IOMMUFD_CMD_FAULT_QUEUE_ALLOC = 0x8e;
static const unsigned int IOMMUFD_CMD_IOAS_MAP_FILE = 0x8f;
static const unsigned int IOMMUFD_CMD_VIOMMU_ALLOC = 0x90;
static const unsigned int IOMMUFD_CMD_VDEVICE_ALLOC = 0x91;
static const unsigned int IOMMUFD_CMD_IOAS_CHANGE_PROCESS = 0x92;
static const unsigned int IOMMUFD_CMD_VEVENTQ_ALLOC = 0x93;
static const unsigned int IOMMUFD_CMD_HW_QUEUE_ALLOC = 0x94;
static const unsigned int IOMMUFD_CMD_IOAS_NOIOMMU_GET_PA = 0x95;

/* Request numbers. */
static const unsigned long IOMMU_DESTROY = CIOMMUFD_IO(CIOMMUFD_IOMMUFD_TYPE, 0x80);
static const unsigned long IOMMU_IOAS_ALLOC = CIOMMUFD_IO(CIOMMUFD_IOMMUFD_TYPE, 0x81);
static const unsigned long IOMMU_IOAS_ALLOW_IOVAS = CIOMMUFD_IO(CIOMMUFD_IOMMUFD_TYPE, 0x82);
static const unsigned long IOMMU_IOAS_COPY = CIOMMUFD_IO(CIOMMUFD_IOMMUFD_TYPE, 0x83);
static const unsigned long IOMMU_IOAS_IOVA_RANGES = CIOMMUFD_IO(CIOMMUFD_IOMMUFD_TYPE, 0x84);
static const unsigned long IOMMU_IOAS_MAP = CIOMMUFD_IO(CIOMMUFD_IOMMUFD_TYPE, 0x85);
static const unsigned long IOMMU_IOAS_UNMAP = CIOMMUFD_IO(CIOMMUFD_IOMMUFD_TYPE, 0x86);
static const unsigned long IOMMU_OPTION = CIOMMUFD_IO(CIOMMUFD_IOMMUFD_TYPE, 0x87);
static const unsigned long IOMMU_VFIO_IOAS = CIOMMUFD_IO(CIOMMUFD_IOMMUFD_TYPE, 0x88);
static const unsigned long IOMMU_HWPT_ALLOC = CIOMMUFD_IO(CIOMMUFD_IOMMUFD_TYPE, 0x89);
static const unsigned long IOMMU_GET_HW_INFO = CIOMMUFD_IO(CIOMMUFD_IOMMUFD_TYPE, 0x8a);
static const unsigned long IOMMU_HWPT_SET_DIRTY_TRACKING = CIOMMUFD_IO(CIOMMUFD_IOMMUFD_TYPE, 0x8b);
static const unsigned long IOMMU_HWPT_GET_DIRTY_BITMAP = CIOMMUFD_IO(CIOMMUFD_IOMMUFD_TYPE, 0x8c);
static const unsigned long IOMMU_HWPT_INVALIDATE = CIOMMUFD_IO(CIOMMUFD_IOMMUFD_TYPE, 0x8d);
static const unsigned long IOMMU_FAULT_QUEUE_ALLOC = CIOMMUFD_IO(CIOMMUFD_IOMMUFD_TYPE, 0x8e);
static const unsigned long IOMMU_IOAS_MAP_FILE = CIOMMUFD_IO(CIOMMUFD_IOMMUFD_TYPE, 0x8f);
static const unsigned long IOMMU_VIOMMU_ALLOC = CIOMMUFD_IO(CIOMMUFD_IOMMUFD_TYPE, 0x90);
static const unsigned long IOMMU_VDEVICE_ALLOC = CIOMMUFD_IO(CIOMMUFD_IOMMUFD_TYPE, 0x91);
static const unsigned long IOMMU_IOAS_CHANGE_PROCESS = CIOMMUFD_IO(CIOMMUFD_IOMMUFD_TYPE, 0x92);
static const unsigned long IOMMU_VEVENTQ_ALLOC = CIOMMUFD_IO(CIOMMUFD_IOMMUFD_TYPE, 0x93);
static const unsigned long IOMMU_HW_QUEUE_ALLOC = CIOMMUFD_IO(CIOMMUFD_IOMMUFD_TYPE, 0x94);
static const unsigned long IOMMU_IOAS_NOIOMMU_GET_PA = CIOMMUFD_IO(CIOMMUFD_IOMMUFD_TYPE, 0x95);

/* 0x80 IOMMU_DESTROY: destroy any object by id. */
struct iommu_destroy {
    ciommufd_u32 size;
    ciommufd_u32 id;
};

/* 0x81 IOMMU_IOAS_ALLOC: a new, empty I/O address space. flags must be 0. */
struct iommu_ioas_alloc {
    ciommufd_u32 size;
    ciommufd_u32 flags;
    ciommufd_u32 out_ioas_id;
};

/* One inclusive IOVA interval [start, last]. */
struct iommu_iova_range {
    ciommufd_u64 start;
    ciommufd_u64 last;
};

/* 0x84 IOMMU_IOAS_IOVA_RANGES: the usable IOVA windows; EMSGSIZE with the
 * needed count in num_iovas when the caller's array is too small. */
struct iommu_ioas_iova_ranges {
    ciommufd_u32 size;
    ciommufd_u32 ioas_id;
    ciommufd_u32 num_iovas;
    ciommufd_u32 __reserved;
    ciommufd_u64 allowed_iovas;       /* user pointer to iommu_iova_range[num_iovas] */
    ciommufd_u64 out_iova_alignment;
};

/* 0x82 IOMMU_IOAS_ALLOW_IOVAS: replace the set of IOVAs that must stay usable. */
struct iommu_ioas_allow_iovas {
    ciommufd_u32 size;
    ciommufd_u32 ioas_id;
    ciommufd_u32 num_iovas;
    ciommufd_u32 __reserved;
    ciommufd_u64 allowed_iovas;
};

/* Flags of IOAS_MAP, IOAS_MAP_FILE and IOAS_COPY. */
static const uint32_t IOMMU_IOAS_MAP_FIXED_IOVA = 1u << 0;
static const uint32_t IOMMU_IOAS_MAP_WRITEABLE = 1u << 1;
static const uint32_t IOMMU_IOAS_MAP_READABLE = 1u << 2;

/* 0x85 IOMMU_IOAS_MAP: map user memory; the kernel picks the IOVA unless FIXED_IOVA. */
struct iommu_ioas_map {
    ciommufd_u32 size;
    ciommufd_u32 flags;
    ciommufd_u32 ioas_id;
    ciommufd_u32 __reserved;
    ciommufd_u64 user_va;
    ciommufd_u64 length;
    ciommufd_u64 iova;
};

/* 0x95 IOMMU_IOAS_NOIOMMU_GET_PA: physical address behind an IOVA (no-IOMMU mode only). */
struct iommu_ioas_noiommu_get_pa {
    ciommufd_u32 size;
    ciommufd_u32 flags;
    ciommufd_u32 ioas_id;
    ciommufd_u32 __reserved;
    ciommufd_u64 iova;
    ciommufd_u64 length;              /* out: contiguous bytes from out_phys */
    ciommufd_u64 out_phys;
};

/* 0x8f IOMMU_IOAS_MAP_FILE: map [start, start+length) of a memfd or dma-buf. */
struct iommu_ioas_map_file {
    ciommufd_u32 size;
    ciommufd_u32 flags;
    ciommufd_u32 ioas_id;
    ciommufd_s32 fd;
    ciommufd_u64 start;
    ciommufd_u64 length;
    ciommufd_u64 iova;
};

/* 0x83 IOMMU_IOAS_COPY: map the pages behind a source range into another IOAS. */
struct iommu_ioas_copy {
    ciommufd_u32 size;
    ciommufd_u32 flags;
    ciommufd_u32 dst_ioas_id;
    ciommufd_u32 src_ioas_id;
    ciommufd_u64 length;
    ciommufd_u64 dst_iova;
    ciommufd_u64 src_iova;
};

/* 0x86 IOMMU_IOAS_UNMAP: length is written back with the bytes unmapped. */
struct iommu_ioas_unmap {
    ciommufd_u32 size;
    ciommufd_u32 ioas_id;
    ciommufd_u64 iova;
    ciommufd_u64 length;
};

/* 0x87 IOMMU_OPTION */
static const uint32_t IOMMU_OPTION_RLIMIT_MODE = 0;
static const uint32_t IOMMU_OPTION_HUGE_PAGES = 1;
static const uint16_t IOMMU_OPTION_OP_SET = 0;
static const uint16_t IOMMU_OPTION_OP_GET = 1;

struct iommu_option {
    ciommufd_u32 size;
    ciommufd_u32 option_id;
    ciommufd_u16 op;
    ciommufd_u16 __reserved;
    ciommufd_u32 object_id;
    ciommufd_u64 val64;
};

/* 0x88 IOMMU_VFIO_IOAS: the IOAS used by the VFIO compatibility container. */
static const uint16_t IOMMU_VFIO_IOAS_GET = 0;
static const uint16_t IOMMU_VFIO_IOAS_SET = 1;
static const uint16_t IOMMU_VFIO_IOAS_CLEAR = 2;

struct iommu_vfio_ioas {
    ciommufd_u32 size;
    ciommufd_u32 ioas_id;
    ciommufd_u16 op;
    ciommufd_u16 __reserved;
};

/* 0x89 IOMMU_HWPT_ALLOC */
static const uint32_t IOMMU_HWPT_ALLOC_NEST_PARENT = 1u << 0;
static const uint32_t IOMMU_HWPT_ALLOC_DIRTY_TRACKING = 1u << 1;
static const uint32_t IOMMU_HWPT_FAULT_ID_VALID = 1u << 2;
static const uint32_t IOMMU_HWPT_ALLOC_PASID = 1u << 3;

static const uint64_t IOMMU_VTD_S1_SRE = 1u << 0;
static const uint64_t IOMMU_VTD_S1_EAFE = 1u << 1;
static const uint64_t IOMMU_VTD_S1_WPE = 1u << 2;

/* Intel VT-d stage-1 (first-stage) user page table. */
struct iommu_hwpt_vtd_s1 {
    ciommufd_u64 flags;
    ciommufd_u64 pgtbl_addr;
    ciommufd_u32 addr_width;
    ciommufd_u32 __reserved;
};

/* ARM SMMUv3 nested stream table entry (little-endian words). */
struct iommu_hwpt_arm_smmuv3 {
    ciommufd_u64 ste[2];
};

/* AMD guest device table entry. */
struct iommu_hwpt_amd_guest {
    ciommufd_u64 dte[4];
};

static const uint32_t IOMMU_HWPT_DATA_NONE = 0;
static const uint32_t IOMMU_HWPT_DATA_VTD_S1 = 1;
static const uint32_t IOMMU_HWPT_DATA_ARM_SMMUV3 = 2;
static const uint32_t IOMMU_HWPT_DATA_AMD_GUEST = 3;

struct iommu_hwpt_alloc {
    ciommufd_u32 size;
    ciommufd_u32 flags;
    ciommufd_u32 dev_id;
    ciommufd_u32 pt_id;               /* IOAS, nesting-parent HWPT or vIOMMU */
    ciommufd_u32 out_hwpt_id;
    ciommufd_u32 __reserved;
    ciommufd_u32 data_type;
    ciommufd_u32 data_len;
    ciommufd_u64 data_uptr;
    ciommufd_u32 fault_id;
    ciommufd_u32 __reserved2;
};

/* 0x8a IOMMU_GET_HW_INFO */
static const uint32_t IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17 = 1u << 0;

struct iommu_hw_info_vtd {
    ciommufd_u32 flags;
    ciommufd_u32 __reserved;
    ciommufd_u64 cap_reg;
    ciommufd_u64 ecap_reg;
};

static const uint32_t IOMMU_HW_INFO_ARM_SMMUV3_ERRATA_REPEAT_TLBI_CFGI = 1u << 0;

struct iommu_hw_info_arm_smmuv3 {
    ciommufd_u32 flags;
    ciommufd_u32 __reserved;
    ciommufd_u32 idr[6];
    ciommufd_u32 iidr;
    ciommufd_u32 aidr;
};

struct iommu_hw_info_tegra241_cmdqv {
    ciommufd_u32 flags;
    ciommufd_u8 version;
    ciommufd_u8 log2vcmdqs;
    ciommufd_u8 log2vsids;
    ciommufd_u8 __reserved;
};

struct iommu_hw_info_amd {
    ciommufd_u64 efr;
    ciommufd_u64 efr2;
};

static const uint32_t IOMMU_HW_INFO_TYPE_NONE = 0;
static const uint32_t IOMMU_HW_INFO_TYPE_DEFAULT = 0;
static const uint32_t IOMMU_HW_INFO_TYPE_INTEL_VTD = 1;
static const uint32_t IOMMU_HW_INFO_TYPE_ARM_SMMUV3 = 2;
static const uint32_t IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV = 3;
static const uint32_t IOMMU_HW_INFO_TYPE_AMD = 4;

static const uint64_t IOMMU_HW_CAP_DIRTY_TRACKING = 1u << 0;
static const uint64_t IOMMU_HW_CAP_PCI_PASID_EXEC = 1u << 1;
static const uint64_t IOMMU_HW_CAP_PCI_PASID_PRIV = 1u << 2;
static const uint64_t IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED = 1u << 3;

static const uint32_t IOMMU_HW_INFO_FLAG_INPUT_TYPE = 1u << 0;

struct iommu_hw_info {
    ciommufd_u32 size;
    ciommufd_u32 flags;
    ciommufd_u32 dev_id;
    ciommufd_u32 data_len;
    ciommufd_u64 data_uptr;
    union {
        ciommufd_u32 in_data_type;    /* with IOMMU_HW_INFO_FLAG_INPUT_TYPE */
        ciommufd_u32 out_data_type;
    };
    ciommufd_u8 out_max_pasid_log2;
    ciommufd_u8 __reserved[3];
    ciommufd_u64 out_capabilities;
};

/* 0x8b IOMMU_HWPT_SET_DIRTY_TRACKING */
static const uint32_t IOMMU_HWPT_DIRTY_TRACKING_ENABLE = 1;

struct iommu_hwpt_set_dirty_tracking {
    ciommufd_u32 size;
    ciommufd_u32 flags;
    ciommufd_u32 hwpt_id;
    ciommufd_u32 __reserved;
};

/* 0x8c IOMMU_HWPT_GET_DIRTY_BITMAP */
static const uint32_t IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR = 1;

struct iommu_hwpt_get_dirty_bitmap {
    ciommufd_u32 size;
    ciommufd_u32 hwpt_id;
    ciommufd_u32 flags;
    ciommufd_u32 __reserved;
    ciommufd_u64 iova;
    ciommufd_u64 length;
    ciommufd_u64 page_size;
    ciommufd_u64 data;                /* user pointer to the bitmap */
};

/* 0x8d IOMMU_HWPT_INVALIDATE */
static const uint32_t IOMMU_HWPT_INVALIDATE_DATA_VTD_S1 = 0;
static const uint32_t IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3 = 1;
static const uint32_t IOMMU_VTD_INV_FLAGS_LEAF = 1u << 0;

struct iommu_hwpt_vtd_s1_invalidate {
    ciommufd_u64 addr;
    ciommufd_u64 npages;
    ciommufd_u32 flags;
    ciommufd_u32 __reserved;
};

struct iommu_viommu_arm_smmuv3_invalidate {
    ciommufd_u64 cmd[2];
};

struct iommu_hwpt_invalidate {
    ciommufd_u32 size;
    ciommufd_u32 hwpt_id;             /* HWPT or vIOMMU */
    ciommufd_u64 data_uptr;
    ciommufd_u32 data_type;
    ciommufd_u32 entry_len;
    ciommufd_u32 entry_num;           /* in: entries; out: entries handled */
    ciommufd_u32 __reserved;
};

/* Fault queue records: read() gives iommu_hwpt_pgfault, write() takes iommu_hwpt_page_response. */
static const uint32_t IOMMU_PGFAULT_FLAGS_PASID_VALID = 1u << 0;
static const uint32_t IOMMU_PGFAULT_FLAGS_LAST_PAGE = 1u << 1;
static const uint32_t IOMMU_PGFAULT_PERM_READ = 1u << 0;
static const uint32_t IOMMU_PGFAULT_PERM_WRITE = 1u << 1;
static const uint32_t IOMMU_PGFAULT_PERM_EXEC = 1u << 2;
static const uint32_t IOMMU_PGFAULT_PERM_PRIV = 1u << 3;

struct iommu_hwpt_pgfault {
    ciommufd_u32 flags;
    ciommufd_u32 dev_id;
    ciommufd_u32 pasid;
    ciommufd_u32 grpid;
    ciommufd_u32 perm;
    ciommufd_u32 __reserved;
    ciommufd_u64 addr;
    ciommufd_u32 length;
    ciommufd_u32 cookie;
};

static const uint32_t IOMMUFD_PAGE_RESP_SUCCESS = 0;
static const uint32_t IOMMUFD_PAGE_RESP_INVALID = 1;

struct iommu_hwpt_page_response {
    ciommufd_u32 cookie;
    ciommufd_u32 code;
};

/* 0x8e IOMMU_FAULT_QUEUE_ALLOC */
struct iommu_fault_alloc {
    ciommufd_u32 size;
    ciommufd_u32 flags;
    ciommufd_u32 out_fault_id;
    ciommufd_u32 out_fault_fd;
};

/* 0x90 IOMMU_VIOMMU_ALLOC */
static const uint32_t IOMMU_VIOMMU_TYPE_DEFAULT = 0;
static const uint32_t IOMMU_VIOMMU_TYPE_ARM_SMMUV3 = 1;
static const uint32_t IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV = 2;

struct iommu_viommu_tegra241_cmdqv {
    ciommufd_u64 out_vintf_mmap_offset;
    ciommufd_u64 out_vintf_mmap_length;
};

struct iommu_viommu_alloc {
    ciommufd_u32 size;
    ciommufd_u32 flags;
    ciommufd_u32 type;
    ciommufd_u32 dev_id;
    ciommufd_u32 hwpt_id;
    ciommufd_u32 out_viommu_id;
    ciommufd_u32 data_len;
    ciommufd_u32 __reserved;
    ciommufd_u64 data_uptr;
};

/* 0x91 IOMMU_VDEVICE_ALLOC */
struct iommu_vdevice_alloc {
    ciommufd_u32 size;
    ciommufd_u32 viommu_id;
    ciommufd_u32 dev_id;
    ciommufd_u32 out_vdevice_id;
    ciommufd_u64 virt_id;
};

/* 0x92 IOMMU_IOAS_CHANGE_PROCESS */
struct iommu_ioas_change_process {
    ciommufd_u32 size;
    ciommufd_u32 __reserved;
};

/* 0x93 IOMMU_VEVENTQ_ALLOC; read() gives iommufd_vevent_header + a vendor record. */
static const uint32_t IOMMU_VEVENTQ_FLAG_LOST_EVENTS = 1u << 0;

struct iommufd_vevent_header {
    ciommufd_u32 flags;
    ciommufd_u32 sequence;
};

static const uint32_t IOMMU_VEVENTQ_TYPE_DEFAULT = 0;
static const uint32_t IOMMU_VEVENTQ_TYPE_ARM_SMMUV3 = 1;
static const uint32_t IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV = 2;

struct iommu_vevent_arm_smmuv3 {
    ciommufd_u64 evt[4];
};

struct iommu_vevent_tegra241_cmdqv {
    ciommufd_u64 lvcmdq_err_map[2];
};

struct iommu_veventq_alloc {
    ciommufd_u32 size;
    ciommufd_u32 flags;
    ciommufd_u32 viommu_id;
    ciommufd_u32 type;
    ciommufd_u32 veventq_depth;
    ciommufd_u32 out_veventq_id;
    ciommufd_u32 out_veventq_fd;
    ciommufd_u32 __reserved;
};

/* 0x94 IOMMU_HW_QUEUE_ALLOC */
static const uint32_t IOMMU_HW_QUEUE_TYPE_DEFAULT = 0;
static const uint32_t IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV = 1;

struct iommu_hw_queue_alloc {
    ciommufd_u32 size;
    ciommufd_u32 flags;
    ciommufd_u32 viommu_id;
    ciommufd_u32 type;
    ciommufd_u32 index;
    ciommufd_u32 out_hw_queue_id;
    ciommufd_u64 nesting_parent_iova;
    ciommufd_u64 length;
};

#endif
