#pragma once
// A guest brought to the state conversions happen in: a VM with two adjacent memory
// regions (one 1 GiB-aligned and private, one shared with a file offset that only
// allows 2 MiB entries), device A assigned, its vDEVICE bound and its TDI in RUN, so
// the simulator's DMA generator reaches private pages too.
#include <cstdint>
#include <vector>

#include "kernel/fault_injecting_syscalls.hpp"
#include "support/assert_ok.hpp"
#include "support/bring_up.hpp"
#include "support/guest_rig.hpp"
#include "support/trusted_caller.hpp"

namespace tio::test {

inline constexpr std::uint64_t kGiB = 1ULL << 30U;

struct RunningGuest {
    static constexpr std::uint64_t kRegionA = 4 * kGiB;  // [4 GiB, 6 GiB) private
    static constexpr std::uint64_t kSizeA = 2 * kGiB;
    static constexpr std::uint64_t kRegionB = kRegionA + kSizeA;  // [6 GiB, 7 GiB + 6 MiB) shared
    static constexpr std::uint64_t kSizeB = kGiB + 6 * kMiB;
    static constexpr std::uint64_t kOffsetB = kSizeA + 4 * kMiB;  // 4 MiB-aligned only
    static constexpr std::uint64_t kStart = kRegionA;
    static constexpr std::uint64_t kEnd = kRegionB + kSizeB;

    // The guest reaches the kernel through `faults`, which does nothing until armed.
    explicit RunningGuest(const std::string& platform)
        : rig(platform), faults(std::make_unique<kernel::FaultInjectingSyscalls>(*rig.sys)) {
        const core::GuestConfig config = rig.guest->config();
        rig.guest = std::make_unique<core::Guest>(config, *faults, anyDevice(config.name));
    }
    ~RunningGuest() { rig.guest.reset(); }  // before `faults`, which it uses

    // Call from the test body (ASSERT_* needs a void function).
    void bringUp() {
        core::Guest& g = *rig.guest;
        ASSERT_OK(rig.vmm.attachTo(g));
        auto gmem = rig.vmm.guestMemfd(kOffsetB + kSizeB);
        ASSERT_OK(gmem);
        ASSERT_OK(rig.vmm.bindMemory(kRegionA, kSizeA, gmem->get(), 0));
        ASSERT_OK(rig.vmm.bindMemory(kRegionB, kSizeB, gmem->get(), kOffsetB));
        auto a = g.addMemory(trusted(), kRegionA, kSizeA, std::move(*gmem->duplicate()), 0, core::MemoryState::Private,
                             std::nullopt);
        ASSERT_OK(a);
        auto b = g.addMemory(trusted(), kRegionB, kSizeB, std::move(*gmem), kOffsetB, core::MemoryState::Shared,
                             std::nullopt);
        ASSERT_OK(b);
        auto up = test::bringUp(g, rig.vmm, kDevA, Stage::Running);
        ASSERT_OK(up);
        ASSERT_EQ(rig.sim.tdiState(kDevA), "run");
        device = up->device;
    }

    // Every rule the simulator's oracle checks, as one message (empty when clean).
    std::string auditFindings() {
        std::string bad;
        for (const auto& [k, v] : rig.sim.audit(kDevA)) {
            if (k == "ideal_leaves" || k == "actual_leaves" || k == "areas") continue;
            if (v != 0) bad += k + "=" + std::to_string(v) + " ";
        }
        return bad;
    }

    GuestRig rig;
    std::unique_ptr<kernel::FaultInjectingSyscalls> faults;
    core::ObjectId device = 0;
};

}  // namespace tio::test
