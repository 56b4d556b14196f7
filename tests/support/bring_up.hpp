#pragma once
// The device half of a guest's bring-up, in the architecture's order (section 5):
// AddDevice -> (the VMM: GetVfioFd, KVM_DEV_VFIO_FILE_ADD) -> Attach -> CreateVIommu
// -> CreateVDevice -> Bind -> the guest's RUN, stopping after `until`. The guest must
// have its VM from `vmm` (and whatever memory the test wants).
#include <cstdint>
#include <string_view>

#include "core/guest.hpp"
#include "support/test_vmm.hpp"
#include "support/trusted_caller.hpp"

namespace tio::test {

enum class Stage : std::uint8_t { Opened, Device, VIommu, VDevice, Bound, Running };

struct BroughtUp {
    core::ObjectId device = 0;
    core::ObjectId viommu = 0;  // 0 before Stage::VIommu
};

// The first failing step's error, with the steps before it left in place.
[[nodiscard]] inline Result<BroughtUp> bringUp(core::Guest& g, TestVmm& vmm, std::string_view bdf, Stage until,
                                               std::uint64_t virtual_id = 0x42) {
    BroughtUp up;
    const auto parsed = Bdf::parse(std::string(bdf));
    if (!parsed) return fail(Code::InvalidArgument, "bad BDF in a test");
    auto dev = g.addDevice(trusted(), *parsed);
    if (!dev) return std::unexpected(dev.error());
    up.device = *dev;
    if (until == Stage::Opened) return up;
    if (auto r = vmm.addDeviceFile(g, up.device); !r) return std::unexpected(r.error());
    if (auto r = g.attachDevice(trusted(), up.device); !r) return std::unexpected(r.error());
    if (until == Stage::Device) return up;
    auto viommu = g.createViommu(trusted(), up.device);
    if (!viommu) return std::unexpected(viommu.error());
    up.viommu = *viommu;
    if (until == Stage::VIommu) return up;
    if (auto r = g.createVdevice(trusted(), up.device, up.viommu, virtual_id); !r) return std::unexpected(r.error());
    if (until == Stage::VDevice) return up;
    if (auto r = g.bind(trusted(), up.device); !r) return std::unexpected(r.error());
    if (until == Stage::Bound) return up;
    const std::uint8_t run[] = {0x02};  // TDISP RUN
    if (auto r = g.guestRequest(trusted(), up.device, core::GuestRequestScope::StateChange, run); !r) {
        return std::unexpected(r.error());
    }
    return up;
}

}  // namespace tio::test
