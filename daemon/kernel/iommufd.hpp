#pragma once
// Typed access to one iommufd context (/dev/iommu open file). Object ids are the
// kernel's (u32, never 0). Each method is one ioctl; ordering and references are the
// core's business. Not thread-safe.
#include <cstdint>
#include <span>
#include <vector>

#include "common/error.hpp"
#include "common/platform.hpp"
#include "kernel/syscalls.hpp"

namespace tio::kernel {

struct IovaRange {
    std::uint64_t start = 0;
    std::uint64_t last = 0;  // inclusive
};

struct HwInfo {
    std::uint32_t type = 0;  // iommu_hw_info_type
    std::uint64_t capabilities = 0;
};

// The vIOMMU type a guest's vIOMMU gets on `platform`. With the TSM series (`tsm`):
// the type the platform's TSM backend supplies, on which a vDEVICE binds. Without:
// the merged type the platform's IOMMU has (Arm SMMUv3 only), or 0 when it has none
// (upstream VT-d and AMD have no vIOMMU type; see iommufd_tsm_proposed.hpp).
[[nodiscard]] std::uint32_t viommuTypeFor(Platform platform, bool tsm);
[[nodiscard]] bool isTsmViommuType(std::uint32_t type);
[[nodiscard]] std::string_view viommuTypeName(std::uint32_t type);
// The TSM request's tvm_arch for a guest on `platform`.
[[nodiscard]] std::uint32_t tvmArchFor(Platform platform);

// The TSM request ops; their numbers are iommufd_tsm_proposed.hpp's alone.
enum class TsmOp : std::uint8_t {
    SetTdiState,
    ValidateMmio,
    ObjectInfo,
    ObjectRead,
    ObjectRegenerate,
    SevEnableDma,
    SevDisableDma,
    GetTdiState,
};

// TDISP DEVICE_INTERFACE_STATE values, also the one-byte SET_TDI_STATE payload.
enum class TdispState : std::uint8_t { ConfigUnlocked = 0x00, ConfigLocked = 0x01, Run = 0x02, Error = 0x03 };

// What the kernel answered to one TSM request, uninterpreted: whether the outcome
// is certain is the caller's judgement (it knows whether the op changes state).
struct TsmAnswer {
    int error = 0;                       // the ioctl's errno; 0 when it returned a residue
    std::uint64_t tsm_code = 0;          // the TSM's own status, copied back on every path
    std::uint64_t residue = 0;           // response bytes left unused (when error == 0)
    std::vector<std::uint8_t> response;  // what the TSM wrote: capacity - residue bytes, when plausible
    [[nodiscard]] bool residuePlausible(std::uint32_t capacity) const { return error != 0 || residue <= capacity; }
};

class Iommufd {
public:
    [[nodiscard]] static Result<Iommufd> open(Syscalls& sys);
    // An iommufd from before a restart: the kernel proves it by answering
    // IOMMU_IOAS_IOVA_RANGES for the IOAS the snapshot names.
    [[nodiscard]] static Result<Iommufd> adopt(Syscalls& sys, UniqueFd fd, std::uint32_t ioas);

    [[nodiscard]] int fd() const noexcept { return fd_.get(); }

    [[nodiscard]] Result<std::uint32_t> allocIoas();
    [[nodiscard]] Result<> destroy(std::uint32_t id);
    // Maps [start, start+length) of `file_fd` at `iova` (FIXED_IOVA | READABLE [| WRITEABLE]).
    [[nodiscard]] Result<> mapFile(std::uint32_t ioas, int file_fd, std::uint64_t start, std::uint64_t length,
                                   std::uint64_t iova, bool writeable);
    // Maps [address, address+length) of this process's memory at `iova`
    // (IOMMU_IOAS_MAP: the kernel pins the pages it finds there, accounted to us).
    [[nodiscard]] Result<> mapAddress(std::uint32_t ioas, std::uint64_t address, std::uint64_t length,
                                      std::uint64_t iova, bool writeable);
    // Unmaps whole areas inside [iova, iova+length); returns the bytes unmapped.
    [[nodiscard]] Result<std::uint64_t> unmap(std::uint32_t ioas, std::uint64_t iova, std::uint64_t length);
    // Proposed hitless restructuring (iommufd_reshape_proposed.hpp).
    [[nodiscard]] Result<> splitArea(std::uint32_t ioas, std::uint64_t iova);
    [[nodiscard]] Result<> joinAreas(std::uint32_t ioas, std::uint64_t iova);
    // max_pgsize 0 lifts the limit.
    [[nodiscard]] Result<> limitPageSize(std::uint32_t ioas, std::uint64_t iova, std::uint64_t length,
                                         std::uint64_t max_pgsize);
    [[nodiscard]] Result<std::vector<IovaRange>> iovaRanges(std::uint32_t ioas);
    [[nodiscard]] Result<std::uint32_t> allocNestParentHwpt(std::uint32_t dev_id, std::uint32_t ioas);
    [[nodiscard]] Result<HwInfo> hwInfo(std::uint32_t dev_id);
    [[nodiscard]] Result<std::uint32_t> allocViommu(std::uint32_t dev_id, std::uint32_t hwpt, std::uint32_t type);
    [[nodiscard]] Result<std::uint32_t> allocVdevice(std::uint32_t viommu, std::uint32_t dev_id, std::uint64_t virt_id);
    // Proposed uAPI (iommufd_tsm_proposed.hpp): one IOMMU_VDEVICE_TSM_REQ. Every
    // answer of the kernel is a TsmAnswer; an Error only when no request was made.
    [[nodiscard]] Result<TsmAnswer> tsmRequest(std::uint32_t vdevice, TsmOp op, std::uint32_t tvm_arch,
                                               std::span<const std::uint8_t> request, std::uint32_t response_capacity);

private:
    Iommufd(Syscalls& sys, UniqueFd fd) : sys_(&sys), fd_(std::move(fd)) {}
    Result<> reshape(std::uint32_t ioas, std::uint32_t op, std::uint64_t iova, std::uint64_t length,
                     std::uint64_t max_pgsize);

    Syscalls* sys_;
    UniqueFd fd_;
};

}  // namespace tio::kernel
