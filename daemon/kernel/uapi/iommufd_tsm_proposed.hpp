#pragma once
// PROPOSED uAPI, NOT MERGED: iommufd vDEVICE TSM bind/unbind (0x95) and the TSM
// request tunnel (0x96) from "Add iommufd ioctls to support TSM operations" v5
// (Aneesh Kumar K.V, 2026-05-25), kernel-uapi.md 4.4 item 5.
// Review (2026-05..06) is reshaping iommu_vdevice_tsm_req (scope -> tvm_arch + op);
// only TSM_OP looked stable. Kept in its own file so the day the merged layout
// differs, exactly one file changes. Earlier RFCs used 0x93/0x94, which are now
// IOMMU_VEVENTQ_ALLOC/IOMMU_HW_QUEUE_ALLOC upstream: never use those numbers here.
#include <cstddef>
#include <cstdint>

#include "kernel/uapi/iommufd.hpp"

namespace tio::uapi {

inline constexpr unsigned long IOMMU_VDEVICE_TSM_OP = io(kIommufdType, 0x95);
inline constexpr unsigned long IOMMU_VDEVICE_TSM_REQ = io(kIommufdType, 0x96);
static_assert(IOMMU_VDEVICE_TSM_OP == 0x3B95 && IOMMU_VDEVICE_TSM_REQ == 0x3B96);

enum iommu_vdevice_tsm_op_type : std::uint32_t {
    IOMMU_VDEVICE_TSM_BIND = 0x1,
    IOMMU_VDEVICE_TSM_UNBIND = 0x2,
};
struct iommu_vdevice_tsm_op {
    std::uint32_t size;
    std::uint32_t type;
    std::uint32_t flags;  // must be 0 (EOPNOTSUPP)
    std::uint32_t vdevice_id;
};
static_assert(sizeof(iommu_vdevice_tsm_op) == 16 && offsetof(iommu_vdevice_tsm_op, type) == 4 &&
              offsetof(iommu_vdevice_tsm_op, flags) == 8 && offsetof(iommu_vdevice_tsm_op, vdevice_id) == 12);

enum iommu_vdevice_tsm_req_scope : std::uint32_t {
    IOMMU_VDEVICE_TSM_REQ_PCI_INFO = 0,
    IOMMU_VDEVICE_TSM_REQ_PCI_STATE_CHANGE = 1,
    IOMMU_VDEVICE_TSM_REQ_PCI_DEBUG_READ = 2,
    IOMMU_VDEVICE_TSM_REQ_PCI_DEBUG_WRITE = 3,
};
// Returns a negative errno, or the positive residue (bytes of the response buffer left
// unused), or 0.
struct iommu_vdevice_tsm_req {
    std::uint32_t size;
    std::uint32_t vdevice_id;
    std::uint32_t scope;
    std::uint32_t req_len;
    std::uint32_t resp_len;
    std::uint32_t __reserved;
    std::uint64_t req_uptr;
    std::uint64_t resp_uptr;
};
static_assert(sizeof(iommu_vdevice_tsm_req) == 40 && offsetof(iommu_vdevice_tsm_req, scope) == 8 &&
              offsetof(iommu_vdevice_tsm_req, resp_len) == 16 && offsetof(iommu_vdevice_tsm_req, req_uptr) == 24 &&
              offsetof(iommu_vdevice_tsm_req, resp_uptr) == 32);

// TDISP DEVICE_INTERFACE_STATE encoding used on the state-change request payload
// (kernel-uapi.md 4.2; encoding per the Intel sample, UNVERIFIED against spec text).
inline constexpr std::uint8_t kTdispConfigUnlocked = 0x00;
inline constexpr std::uint8_t kTdispConfigLocked = 0x01;
inline constexpr std::uint8_t kTdispRun = 0x02;
inline constexpr std::uint8_t kTdispError = 0x03;

}  // namespace tio::uapi

namespace tio::uapi {

// vIOMMU types for confidential device assignment. Upstream has none for TSM use
// (kernel-uapi.md 1.4): AMD's HW-vIOMMU type 3 is proposed (merge status unverified;
// AMD's SEV-TIO tree used 2, which collides with TEGRA241_CMDQV); Intel VT-d has no
// vIOMMU type at all. For TDX the project uses a value far outside upstream's range so
// that a real kernel answers EOPNOTSUPP (-> NotSupported) instead of misreading it;
// tio-simkernel accepts it so the TDX lifecycle can be exercised.
inline constexpr std::uint32_t IOMMU_VIOMMU_TYPE_AMD_PROPOSED = 3;
inline constexpr std::uint32_t kViommuTypeTdxPlaceholder = 0x8001;

// TDISP request codes carried in a TSM_REQ INFO payload (PCIe r6 ch. 11 message names).
inline constexpr std::uint8_t kTdispGetDeviceInterfaceState = 0x81;
inline constexpr std::uint8_t kTdispGetDeviceInterfaceReport = 0x82;

}  // namespace tio::uapi
