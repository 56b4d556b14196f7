#pragma once
// Own copy of the merged parts of <linux/iommufd.h> that tio-manager uses.
// Debian 12 build hosts ship 6.1 uAPI headers, which have no iommufd.h at all
// (shared/reference/kernel-uapi.md section 1; toolchain.md 10b). Layouts and
// numbers follow kernel-uapi.md 1.3/1.4; every struct is pinned by static_asserts
// on size and offsets so a typo cannot silently change the ABI.
//
// Every iommufd ioctl is _IO(';', nr): no size or direction bits. The kernel reads
// the leading u32 `size` and accepts any size >= the per-ioctl minimum.
#include <cstddef>
#include <cstdint>

#include "kernel/uapi/ioctl_encoding.hpp"

namespace tio::uapi {

inline constexpr std::uint32_t kIommufdType = ';';  // 0x3B, shared with VFIO
inline constexpr std::uint32_t kIommufdCmdBase = 0x80;

inline constexpr unsigned long IOMMU_DESTROY = io(kIommufdType, 0x80);
inline constexpr unsigned long IOMMU_IOAS_ALLOC = io(kIommufdType, 0x81);
inline constexpr unsigned long IOMMU_IOAS_IOVA_RANGES = io(kIommufdType, 0x84);
inline constexpr unsigned long IOMMU_IOAS_MAP = io(kIommufdType, 0x85);
inline constexpr unsigned long IOMMU_IOAS_UNMAP = io(kIommufdType, 0x86);
inline constexpr unsigned long IOMMU_OPTION = io(kIommufdType, 0x87);
inline constexpr unsigned long IOMMU_HWPT_ALLOC = io(kIommufdType, 0x89);
inline constexpr unsigned long IOMMU_GET_HW_INFO = io(kIommufdType, 0x8a);
inline constexpr unsigned long IOMMU_IOAS_MAP_FILE = io(kIommufdType, 0x8f);
inline constexpr unsigned long IOMMU_VIOMMU_ALLOC = io(kIommufdType, 0x90);
inline constexpr unsigned long IOMMU_VDEVICE_ALLOC = io(kIommufdType, 0x91);
static_assert(IOMMU_DESTROY == 0x3B80 && IOMMU_IOAS_MAP_FILE == 0x3B8F && IOMMU_VDEVICE_ALLOC == 0x3B91);

struct iommu_destroy {
    std::uint32_t size;
    std::uint32_t id;
};
static_assert(sizeof(iommu_destroy) == 8 && offsetof(iommu_destroy, id) == 4);

struct iommu_ioas_alloc {
    std::uint32_t size;
    std::uint32_t flags;
    std::uint32_t out_ioas_id;
};
static_assert(sizeof(iommu_ioas_alloc) == 12 && offsetof(iommu_ioas_alloc, out_ioas_id) == 8);

struct iommu_iova_range {
    std::uint64_t start;
    std::uint64_t last;  // inclusive
};
static_assert(sizeof(iommu_iova_range) == 16 && offsetof(iommu_iova_range, last) == 8);

struct iommu_ioas_iova_ranges {
    std::uint32_t size;
    std::uint32_t ioas_id;
    std::uint32_t num_iovas;  // in: capacity of allowed_iovas; out: total count (EMSGSIZE if too small)
    std::uint32_t __reserved;
    std::uint64_t allowed_iovas;  // user pointer to iommu_iova_range[]
    std::uint64_t out_iova_alignment;
};
static_assert(sizeof(iommu_ioas_iova_ranges) == 32 && offsetof(iommu_ioas_iova_ranges, num_iovas) == 8 &&
              offsetof(iommu_ioas_iova_ranges, allowed_iovas) == 16 &&
              offsetof(iommu_ioas_iova_ranges, out_iova_alignment) == 24);

enum iommufd_ioas_map_flags : std::uint32_t {
    IOMMU_IOAS_MAP_FIXED_IOVA = 1U << 0U,
    IOMMU_IOAS_MAP_WRITEABLE = 1U << 1U,
    IOMMU_IOAS_MAP_READABLE = 1U << 2U,
};

struct iommu_ioas_map {
    std::uint32_t size;
    std::uint32_t flags;
    std::uint32_t ioas_id;
    std::uint32_t __reserved;
    std::uint64_t user_va;
    std::uint64_t length;
    std::uint64_t iova;
};
static_assert(sizeof(iommu_ioas_map) == 40 && offsetof(iommu_ioas_map, user_va) == 16 &&
              offsetof(iommu_ioas_map, iova) == 32);

struct iommu_ioas_map_file {
    std::uint32_t size;
    std::uint32_t flags;
    std::uint32_t ioas_id;
    std::int32_t fd;
    std::uint64_t start;  // byte offset in the file
    std::uint64_t length;
    std::uint64_t iova;
};
static_assert(sizeof(iommu_ioas_map_file) == 40 && offsetof(iommu_ioas_map_file, fd) == 12 &&
              offsetof(iommu_ioas_map_file, start) == 16 && offsetof(iommu_ioas_map_file, length) == 24 &&
              offsetof(iommu_ioas_map_file, iova) == 32);

struct iommu_ioas_unmap {
    std::uint32_t size;
    std::uint32_t ioas_id;
    std::uint64_t iova;
    std::uint64_t length;  // in: bytes to unmap; out: bytes unmapped
};
static_assert(sizeof(iommu_ioas_unmap) == 24 && offsetof(iommu_ioas_unmap, iova) == 8 &&
              offsetof(iommu_ioas_unmap, length) == 16);

inline constexpr std::uint32_t IOMMU_OPTION_RLIMIT_MODE = 0;
inline constexpr std::uint32_t IOMMU_OPTION_HUGE_PAGES = 1;
inline constexpr std::uint16_t IOMMU_OPTION_OP_SET = 0;
inline constexpr std::uint16_t IOMMU_OPTION_OP_GET = 1;
struct iommu_option {
    std::uint32_t size;
    std::uint32_t option_id;
    std::uint16_t op;
    std::uint16_t __reserved;
    std::uint32_t object_id;
    std::uint64_t val64;
};
static_assert(sizeof(iommu_option) == 24 && offsetof(iommu_option, op) == 8 &&
              offsetof(iommu_option, object_id) == 12 && offsetof(iommu_option, val64) == 16);

enum iommufd_hwpt_alloc_flags : std::uint32_t {
    IOMMU_HWPT_ALLOC_NEST_PARENT = 1U << 0U,
    IOMMU_HWPT_ALLOC_DIRTY_TRACKING = 1U << 1U,
    IOMMU_HWPT_FAULT_ID_VALID = 1U << 2U,
    IOMMU_HWPT_ALLOC_PASID = 1U << 3U,
};
inline constexpr std::uint32_t IOMMU_HWPT_DATA_NONE = 0;
inline constexpr std::uint32_t IOMMU_HWPT_DATA_AMD_GUEST = 3;  // kernel-as-it-is.md 5

struct iommu_hwpt_alloc {
    std::uint32_t size;
    std::uint32_t flags;
    std::uint32_t dev_id;
    std::uint32_t pt_id;
    std::uint32_t out_hwpt_id;
    std::uint32_t __reserved;
    std::uint32_t data_type;
    std::uint32_t data_len;
    std::uint64_t data_uptr;
    std::uint32_t fault_id;
    std::uint32_t __reserved2;
};
static_assert(sizeof(iommu_hwpt_alloc) == 48 && offsetof(iommu_hwpt_alloc, pt_id) == 12 &&
              offsetof(iommu_hwpt_alloc, out_hwpt_id) == 16 && offsetof(iommu_hwpt_alloc, data_type) == 24 &&
              offsetof(iommu_hwpt_alloc, data_uptr) == 32 && offsetof(iommu_hwpt_alloc, fault_id) == 40);

enum iommu_hw_info_type : std::uint32_t {
    IOMMU_HW_INFO_TYPE_NONE = 0,
    IOMMU_HW_INFO_TYPE_INTEL_VTD = 1,
    IOMMU_HW_INFO_TYPE_ARM_SMMUV3 = 2,
    IOMMU_HW_INFO_TYPE_AMD = 4,  // kernel-as-it-is.md 5 (3 is TEGRA241_CMDQV)
};
// IOMMU_HW_INFO_TYPE_AMD's data: the extended feature registers.
struct iommu_hw_info_amd {
    std::uint64_t efr;
    std::uint64_t efr2;
};
static_assert(sizeof(iommu_hw_info_amd) == 16 && offsetof(iommu_hw_info_amd, efr2) == 8);
// iommu_hw_info.out_capabilities bits.
inline constexpr std::uint64_t IOMMU_HW_CAP_DIRTY_TRACKING = 1ULL << 0U;
inline constexpr std::uint64_t IOMMU_HW_CAP_PCI_PASID_EXEC = 1ULL << 1U;
inline constexpr std::uint64_t IOMMU_HW_CAP_PCI_PASID_PRIV = 1ULL << 2U;
inline constexpr std::uint64_t IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED = 1ULL << 3U;
struct iommu_hw_info {
    std::uint32_t size;
    std::uint32_t flags;
    std::uint32_t dev_id;
    std::uint32_t data_len;  // in: buffer length; out: kernel's length
    std::uint64_t data_uptr;
    std::uint32_t out_data_type;  // union with in_data_type
    std::uint8_t out_max_pasid_log2;
    std::uint8_t __reserved[3];
    std::uint64_t out_capabilities;
};
static_assert(sizeof(iommu_hw_info) == 40 && offsetof(iommu_hw_info, data_uptr) == 16 &&
              offsetof(iommu_hw_info, out_data_type) == 24 && offsetof(iommu_hw_info, out_max_pasid_log2) == 28 &&
              offsetof(iommu_hw_info, out_capabilities) == 32);

// Upstream has no vIOMMU type for Intel VT-d and none for "TSM" (kernel-uapi.md 1.4);
// DEFAULT (0) is rejected with EOPNOTSUPP by the kernel.
enum iommu_viommu_type : std::uint32_t {
    IOMMU_VIOMMU_TYPE_DEFAULT = 0,
    IOMMU_VIOMMU_TYPE_ARM_SMMUV3 = 1,
    IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV = 2,
};
struct iommu_viommu_alloc {
    std::uint32_t size;
    std::uint32_t flags;
    std::uint32_t type;
    std::uint32_t dev_id;
    std::uint32_t hwpt_id;  // must be a NEST_PARENT HWPT_PAGING
    std::uint32_t out_viommu_id;
    std::uint32_t data_len;
    std::uint32_t __reserved;
    std::uint64_t data_uptr;
};
static_assert(sizeof(iommu_viommu_alloc) == 40 && offsetof(iommu_viommu_alloc, hwpt_id) == 16 &&
              offsetof(iommu_viommu_alloc, out_viommu_id) == 20 && offsetof(iommu_viommu_alloc, data_uptr) == 32);

struct iommu_vdevice_alloc {
    std::uint32_t size;
    std::uint32_t viommu_id;
    std::uint32_t dev_id;
    std::uint32_t out_vdevice_id;
    std::uint64_t virt_id;  // guest-visible id; for TSM the TDI id
};
static_assert(sizeof(iommu_vdevice_alloc) == 24 && offsetof(iommu_vdevice_alloc, out_vdevice_id) == 12 &&
              offsetof(iommu_vdevice_alloc, virt_id) == 16);

// Merged for 7.3 (iommufd merge of 2026-08-19): the physical address behind an IOVA
// of a no-IOMMU context. It holds 0x95, which the obsolete v5 TSM proposal also
// used: a probe at that number must look for a positive fingerprint
// (kernel-as-it-is.md 5). An undersized struct answers EINVAL.
inline constexpr unsigned long IOMMU_IOAS_NOIOMMU_GET_PA = io(kIommufdType, 0x95);
struct iommu_ioas_noiommu_get_pa {
    std::uint32_t size;
    std::uint32_t flags;
    std::uint32_t ioas_id;
    std::uint32_t __reserved;
    std::uint64_t iova;
    std::uint64_t length;
    std::uint64_t out_phys;
};
static_assert(IOMMU_IOAS_NOIOMMU_GET_PA == 0x3B95);
static_assert(sizeof(iommu_ioas_noiommu_get_pa) == 40 && offsetof(iommu_ioas_noiommu_get_pa, ioas_id) == 8 &&
              offsetof(iommu_ioas_noiommu_get_pa, iova) == 16 && offsetof(iommu_ioas_noiommu_get_pa, length) == 24 &&
              offsetof(iommu_ioas_noiommu_get_pa, out_phys) == 32);

}  // namespace tio::uapi
