#pragma once
// The guest's objects. References are explicit, as in iommufd: `pins` counts who
// depends on an object (a vDEVICE pins its vIOMMU; a device or vIOMMU pins the
// nest-parent page table), and destroying a pinned object is Busy. Every kernel
// resource is held by exactly one RAII handle here.
#include <cstdint>
#include <optional>
#include <utility>
#include <string>

#include "common/bdf.hpp"
#include "common/range_map.hpp"
#include "common/unique_fd.hpp"
#include "core/lifecycle.hpp"
#include "core/memory_rules.hpp"
#include "kernel/device_claim.hpp"
#include "kernel/vfio_device.hpp"

namespace tio::core {

using ObjectId = std::uint64_t;  // monotonic per guest, never reused (D-Bus path element)

struct VDevice {
    std::uint32_t kernel_id = 0;  // iommufd vDEVICE id
    ObjectId viommu = 0;
    std::uint64_t virtual_id = 0;
};

struct Device {
    ObjectId id = 0;
    Bdf bdf;
    std::string vfio_name;  // "vfio3"
    kernel::DeviceClaim claim;
    kernel::VfioDevice vfio;
    std::uint32_t dev_id = 0;  // iommufd DEVICE id
    bool attached = false;
    std::optional<VDevice> vdevice;
    TdiState tdi = TdiState::Unsupported;
    bool tsm_connected = false;
};

struct VIommu {
    ObjectId id = 0;
    std::uint32_t kernel_id = 0;
    std::uint32_t type = 0;
    std::uint32_t pins = 0;  // vDEVICEs on it
};

// Guest memory: one memslot over a guest_memfd range. Its pages' states are kept as
// runs (memory per fragment, not per page); the IOAS areas and page-size limits are
// derived from them by the planner (memory_planner.hpp), so they are not stored.
struct MemoryRegion {
    ObjectId id = 0;
    std::uint64_t gpa = 0;
    std::uint64_t size = 0;
    std::uint64_t offset = 0;
    UniqueFd gmem;
    std::uint32_t memslot = 0;
    RangeMap<PageState> states;  // covers exactly [gpa, gpa + size)
    std::uint64_t private_bytes = 0;
    std::uint64_t revoked_bytes = 0;
    std::pair<std::uint64_t, std::uint64_t> file_identity{};  // (st_dev, st_ino) of the guest_memfd
    [[nodiscard]] std::uint64_t end() const { return gpa + size; }
    [[nodiscard]] std::uint64_t fileOffset(std::uint64_t at_gpa) const { return offset + (at_gpa - gpa); }
};

}  // namespace tio::core
