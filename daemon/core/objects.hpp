#pragma once
// The typed records of the guest's objects. Who holds whom is the object table's
// (core/object_table.hpp), under the same key; these hold what each object is and
// the RAII handles of its kernel resources, each held by exactly one of them.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "common/bdf.hpp"
#include "common/shared_mapping.hpp"
#include "common/unique_fd.hpp"
#include "core/lifecycle.hpp"
#include "core/memory_rules.hpp"
#include "core/object_table.hpp"
#include "core/page_states.hpp"
#include "host/device_claim.hpp"
#include "kernel/vfio_device.hpp"

namespace tio::core {

// Table key {VDevice, device id}.
struct VDevice {
    std::uint32_t kernel_id = 0;  // iommufd vDEVICE id
    ObjectId viommu = 0;
    std::uint64_t virtual_id = 0;
};

// Table key {Device, id}.
struct Device {
    ObjectId id = 0;
    Bdf bdf;
    std::string vfio_name;  // "vfio3"
    host::DeviceClaim claim;
    kernel::VfioDevice vfio;
    std::uint32_t dev_id = 0;  // iommufd DEVICE id
    DeviceState state = DeviceState::Opened;
    std::optional<VDevice> vdevice;
    bool tdisp_capable = false;  // its DSM's tsm/ group has `bound` (kernel/tsm.hpp)
    TdiState tdi = TdiState::Unlocked;
    bool tsm_connected = false;
    // Its device security manager as the kernel resolves it: the PF's function 0 for a
    // VF before connect, tsm/dsm after.
    Bdf dsm;
    std::optional<kernel::VfToken> vf_token;  // shown at bind (AddDevice's vf-token)
    // Locked, running or in error: only Unbind may touch it (never a reset, a
    // re-attach or a vDEVICE destroy under a bound TDI).
    [[nodiscard]] bool tdiNeedsUnbind() const { return tdi != TdiState::Unlocked; }
};

// What clients and snapshots call the TDI state of a function without TDISP.
inline constexpr std::string_view kNoTdispStateName = "unsupported";

// The TDI state as clients and snapshots name it: kNoTdispStateName for a function
// without TDISP, else the state.
[[nodiscard]] inline std::string_view tdiStateName(const Device& d) {
    return d.tdisp_capable ? toString(d.tdi) : kNoTdispStateName;
}

// Table key {VIommu, id}.
struct VIommu {
    ObjectId id = 0;
    std::uint32_t kernel_id = 0;
    std::uint32_t type = 0;
};

// Guest memory: a guest_memfd range at a GPA (the VMM made it guest memory with its
// memslot), table key {Memory, id}. Its pages' states are kept as runs (memory per
// fragment, not per page); the IOAS areas and page-size limits are derived from them
// by the planner (memory_planner.hpp), so they are not stored.
struct MemoryRegion {
    using FileKey = std::pair<std::uint64_t, std::uint64_t>;  // (st_dev, st_ino)
    ObjectId id = 0;
    std::uint64_t gpa = 0;
    std::uint64_t size = 0;
    std::uint64_t offset = 0;
    UniqueFd gmem;
    // The separate model's shared backing (a memfd) of the same range; empty when the
    // VMM gave none (then shared pages are not DMA-mapped) or the model is in-place.
    UniqueFd shared;
    std::uint64_t shared_offset = 0;
    // In place without guest_memfd by file: the daemon's own mapping of the range,
    // through which IOMMU_IOAS_MAP pins shared pages (empty when the guest_memfd
    // cannot be mapped: created without GUEST_MEMFD_FLAG_MMAP).
    SharedMapping view;
    PageStates states;  // covers exactly [gpa, gpa + size)
    // Byte counts of `states`, kept in step by count() so that readers (the views, on
    // every change) never walk the runs.
    std::uint64_t private_bytes = 0;
    std::uint64_t revoked_bytes = 0;
    std::uint64_t revoked_private_bytes = 0;  // the private ones among revoked_bytes
    FileKey file_identity{};                  // of the guest_memfd
    FileKey shared_identity{};                // of the shared memfd
    [[nodiscard]] std::uint64_t end() const { return gpa + size; }
    [[nodiscard]] std::uint64_t fileOffset(std::uint64_t at_gpa) const { return offset + (at_gpa - gpa); }
    [[nodiscard]] std::uint64_t sharedOffset(std::uint64_t at_gpa) const { return shared_offset + (at_gpa - gpa); }
    // `bytes` of pages in state `s` entered (`add`) or left `states`.
    void count(const PageState& s, std::uint64_t bytes, bool add) {
        auto adjust = [bytes, add](std::uint64_t& n) { n = add ? n + bytes : n - bytes; };
        if (s.attr == MemoryState::Private) adjust(private_bytes);
        if (s.revoked) adjust(revoked_bytes);
        if (s.revoked && s.attr == MemoryState::Private) adjust(revoked_private_bytes);
    }
};

}  // namespace tio::core
