#pragma once
// PROPOSED uAPI, NOT MERGED: "iommufd: vIOMMUs and TSM guest requests for
// confidential guests", RFC v7 (Aneesh Kumar K.V, 2026-10-08, lore
// 20261008055955.4014342-1-aneesh.kumar@kernel.org; v6 2026-09-17), as in the Arm
// CCA integration tree (kernel-as-it-is.md 6). The only file that knows its shape:
// the day the merged layout differs, this file and the simulator change.
//
// The shape: there is no bind ioctl. The PCI/TSM backend supplies a vIOMMU type;
// creating a vDEVICE on a vIOMMU of that type binds (creates the TSM's device
// context), destroying it unbinds. TDISP LOCK, RUN and UNLOCK and the guest's other
// requests go through IOMMU_VDEVICE_TSM_REQ.
//
// What is upstream's and what is this project's:
// - 0x96, the 48-byte struct, TVM_ARCH_CCA = 1 and ARM_REALM_SMMUV3 = 3 are the CCA
//   tree's numbers (none is merged; 0x95 is IOMMU_IOAS_NOIOMMU_GET_PA since 7.3 and
//   the obsolete v5's bind ioctl sat there: nothing here may use it).
// - The op values follow the order v7 lists them in (kernel-as-it-is.md 6 gives the
//   names, not the numbers); GET_TDI_STATE is this project's reading of how the host
//   learns a TDI's state (a TDISP GET_DEVICE_INTERFACE_STATE through the TSM).
// - Values at or above kProjectPlaceholderBase are the project's own, for backends
//   that have not proposed a number: far from anything upstream allocates, so a real
//   kernel refuses them (EOPNOTSUPP/EINVAL) instead of misreading them.
#include <cstddef>
#include <cstdint>

#include "kernel/uapi/iommufd.hpp"

namespace tio::uapi {

inline constexpr std::uint32_t kProjectPlaceholderBase = 0x8000;

inline constexpr unsigned long IOMMU_VDEVICE_TSM_REQ = io(kIommufdType, 0x96);
static_assert(IOMMU_VDEVICE_TSM_REQ == 0x3B96 && IOMMU_VDEVICE_TSM_REQ != IOMMU_IOAS_NOIOMMU_GET_PA);

enum iommu_vdevice_tsm_req_op : std::uint32_t {
    IOMMU_VDEVICE_TSM_REQ_SET_TDI_STATE = 1,      // payload: one byte, the TDISP state asked for
    IOMMU_VDEVICE_TSM_REQ_VALIDATE_MMIO = 2,      // payload: struct tsm_mmio_range
    IOMMU_VDEVICE_TSM_REQ_OBJECT_INFO = 3,        // payload: u32 object; answer: struct tsm_object_info
    IOMMU_VDEVICE_TSM_REQ_OBJECT_READ = 4,        // payload: struct tsm_object_read; answer: the bytes
    IOMMU_VDEVICE_TSM_REQ_OBJECT_REGENERATE = 5,  // payload: u32 object
    IOMMU_VDEVICE_TSM_REQ_SEV_ENABLE_DMA = 6,     // TVM_ARCH_SEV only; no payload
    IOMMU_VDEVICE_TSM_REQ_SEV_DISABLE_DMA = 7,    // TVM_ARCH_SEV only; no payload
    IOMMU_VDEVICE_TSM_REQ_GET_TDI_STATE = 8,      // payload/answer: TDISP messages (below)
};

// The confidential-VM architecture a request is for: the TSM refuses a mismatch.
inline constexpr std::uint32_t IOMMU_TVM_ARCH_CCA = 1;
inline constexpr std::uint32_t kTvmArchTdxPlaceholder = kProjectPlaceholderBase + 1;
inline constexpr std::uint32_t kTvmArchSevPlaceholder = kProjectPlaceholderBase + 2;

// Returns a negative errno or the non-negative residue: response bytes left unused,
// never more than resp_len. tsm_code, the TSM's own status, is copied back on every
// path and may be 0 on failure ones. An EFAULT on copy-back can follow a state
// change that did commit.
struct iommu_vdevice_tsm_req {
    std::uint32_t size;
    std::uint32_t vdevice_id;
    std::uint32_t op;
    std::uint32_t tvm_arch;
    std::uint32_t req_len;
    std::uint32_t resp_len;
    std::uint64_t req_uptr;
    std::uint64_t resp_uptr;
    std::uint64_t tsm_code;  // out
};
static_assert(sizeof(iommu_vdevice_tsm_req) == 48 && offsetof(iommu_vdevice_tsm_req, op) == 8 &&
              offsetof(iommu_vdevice_tsm_req, tvm_arch) == 12 && offsetof(iommu_vdevice_tsm_req, req_len) == 16 &&
              offsetof(iommu_vdevice_tsm_req, resp_len) == 20 && offsetof(iommu_vdevice_tsm_req, req_uptr) == 24 &&
              offsetof(iommu_vdevice_tsm_req, resp_uptr) == 32 && offsetof(iommu_vdevice_tsm_req, tsm_code) == 40);

// Evidence objects the TSM keeps per TDI. Each has a generation that LOCK, a
// function reset and REGENERATE advance.
enum tsm_object : std::uint32_t {
    TSM_OBJECT_CERTIFICATES = 1,
    TSM_OBJECT_MEASUREMENTS = 2,
    TSM_OBJECT_INTERFACE_REPORT = 3,
};
struct tsm_object_info {
    std::uint64_t size;
    std::uint64_t generation;
};
static_assert(sizeof(tsm_object_info) == 16 && offsetof(tsm_object_info, generation) == 8);
struct tsm_object_read {
    std::uint32_t object;
    std::uint32_t __reserved;
    std::uint64_t offset;  // the answer is the bytes from here, as many as fit
};
static_assert(sizeof(tsm_object_read) == 16 && offsetof(tsm_object_read, offset) == 8);
struct tsm_mmio_range {
    std::uint64_t gpa;
    std::uint64_t size;
};
static_assert(sizeof(tsm_mmio_range) == 16);

// vIOMMU types a TSM backend supplies. Only CCA's has a proposed number.
inline constexpr std::uint32_t IOMMU_VIOMMU_TYPE_ARM_REALM_SMMUV3 = 3;
inline constexpr std::uint32_t kViommuTypeTdxPlaceholder = kProjectPlaceholderBase + 1;
inline constexpr std::uint32_t kViommuTypeSevPlaceholder = kProjectPlaceholderBase + 2;

// --- PCIe TDISP (r6.x ch. 11; DMTF libspdm pci_tdisp.h) ---
inline constexpr std::uint8_t kTdispVersion = 0x10;
enum tdisp_request : std::uint8_t {
    TDISP_GET_VERSION = 0x81,
    TDISP_GET_CAPABILITIES = 0x82,
    TDISP_LOCK_INTERFACE = 0x83,
    TDISP_GET_DEVICE_INTERFACE_REPORT = 0x84,
    TDISP_GET_DEVICE_INTERFACE_STATE = 0x85,
    TDISP_START_INTERFACE = 0x86,
    TDISP_STOP_INTERFACE = 0x87,
};
enum tdisp_response : std::uint8_t {
    TDISP_DEVICE_INTERFACE_STATE = 0x05,
    TDISP_ERROR = 0x7F,
};
enum tdisp_state : std::uint8_t {
    TDISP_CONFIG_UNLOCKED = 0,
    TDISP_CONFIG_LOCKED = 1,
    TDISP_RUN = 2,
    TDISP_ERROR_STATE = 3,
};
#pragma pack(push, 1)
struct tdisp_header {
    std::uint8_t version;
    std::uint8_t message_type;
    std::uint8_t __reserved[2];
    std::uint32_t function_id;  // INTERFACE_ID: requester id [15:0], segment [23:16], segment valid [24]
    std::uint64_t __reserved_id;
};
#pragma pack(pop)
static_assert(sizeof(tdisp_header) == 16 && offsetof(tdisp_header, function_id) == 4);

}  // namespace tio::uapi
