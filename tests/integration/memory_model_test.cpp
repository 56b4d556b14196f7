// The two memory models (architecture.md section 6) on the kernel profiles that have
// them, through the core against the simulator, which is the oracle:
//  - separate (7.3): shared pages are the memfd the VMM passed, mapped with
//    MAP_FILE; the VMM sets the VM-scoped attribute around its ConvertMemory calls;
//  - in place without guest_memfd by file (7.4): the daemon converts the attribute
//    on the guest_memfd and DMA-maps shared pages by address, through its own mmap
//    of the guest_memfd (IOMMU_IOAS_MAP); a guest_memfd that cannot be mapped leaves
//    them unmapped (SharedMapped false).
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <random>
#include <sstream>

#include "support/assert_ok.hpp"
#include "support/bring_up.hpp"
#include "support/guest_rig.hpp"
#include "support/model_of.hpp"
#include "support/trusted_caller.hpp"

namespace tio::test {
namespace {

using core::MemoryConversion;
using core::MemoryState;

constexpr std::uint64_t kSize = 8 * kMiB;

class SeparateModelTest : public ::testing::TestWithParam<const char*> {
protected:
    // A region of kSize at kGuestRamGpa, all private, with a memfd as its shared
    // backing; device A attached.
    void bringUpGuest() {
        ASSERT_OK(rig.vmm.attachTo(g));
        ASSERT_EQ(g.vm()->model, core::MemoryModel::Separate);
        auto gmem = rig.vmm.guestMemory(kGuestRamGpa, kSize);
        ASSERT_OK(gmem);
        ASSERT_OK(rig.vmm.setAttributes(kGuestRamGpa, kSize, true));
        UniqueFd memfd = TestVmm::sharedMemory(kSize);
        ASSERT_TRUE(memfd);
        auto region = g.addMemory(trusted(), kGuestRamGpa, kSize, std::move(*gmem), 0, MemoryState::Private,
                                  core::SharedBacking{std::move(memfd), 0});
        ASSERT_OK(region);
        region_ = *region;
        ASSERT_OK(bringUp(g, rig.vmm, kDevA, Stage::Device));
    }
    // The guest's conversions, in the order the contract gives the VMM: the daemon
    // before a range becomes private, after it became shared.
    void toShared(std::uint64_t gpa, std::uint64_t size) {
        ASSERT_OK(rig.vmm.setAttributes(gpa, size, false));
        const MemoryConversion c{gpa, size, MemoryState::Shared};
        ASSERT_OK(g.convertMemory(trusted(), {&c, 1}));
    }
    void toPrivate(std::uint64_t gpa, std::uint64_t size) {
        const MemoryConversion c{gpa, size, MemoryState::Private};
        ASSERT_OK(g.convertMemory(trusted(), {&c, 1}));
        ASSERT_OK(rig.vmm.setAttributes(gpa, size, true));
    }
    std::string dma(std::uint64_t gpa) { return rig.sim.dma(kDevA, rig.sim.sharedIova(gpa), 4096, true); }

    GuestRig rig{GetParam(), "7.3"};
    core::Guest& g = *rig.guest;
    core::ObjectId region_ = 0;
};

TEST_P(SeparateModelTest, SharedPagesAreTheMemfdsAndConversionsFollowTheVmm) {
    bringUpGuest();
    ASSERT_FALSE(HasFatalFailure());
    const core::MemoryRegion& r = g.memory().at(region_);
    EXPECT_TRUE(g.mappingRules(r).shared_dma);
    EXPECT_FALSE(g.mappingRules(r).private_dma) << "no kernel maps guest_memfd by file here";
    EXPECT_EQ(g.mappedBytes(r), 0U);
    EXPECT_NE(dma(kGuestRamGpa), "ok") << "private memory is on no shared IOMMU path";

    toShared(kGuestRamGpa, 2 * kMiB);
    ASSERT_FALSE(HasFatalFailure());
    EXPECT_EQ(dma(kGuestRamGpa), "ok");
    EXPECT_EQ(g.mappedBytes(r), 2 * kMiB);
    toShared(kGuestRamGpa + 4 * kMiB, 2 * kMiB);
    ASSERT_FALSE(HasFatalFailure());
    EXPECT_EQ(dma(kGuestRamGpa + 5 * kMiB), "ok");
    toPrivate(kGuestRamGpa, 2 * kMiB);
    ASSERT_FALSE(HasFatalFailure());
    EXPECT_NE(dma(kGuestRamGpa), "ok") << "unmapped before the VMM made it private";
    EXPECT_EQ(rig.sim.counter("stale_shared_dma"), 0U);

    // A VMM that makes memory private behind the daemon's back leaves a stale mapping
    // of a host page: DMA reaches the memfd, never the private page (no machine check).
    ASSERT_OK(rig.vmm.setAttributes(kGuestRamGpa + 4 * kMiB, 2 * kMiB, true));
    EXPECT_EQ(dma(kGuestRamGpa + 4 * kMiB), "ok");
    EXPECT_EQ(rig.sim.counter("stale_shared_dma"), 1U);
    EXPECT_EQ(rig.sim.counter("machine_checks"), 0U);
    EXPECT_EQ(rig.sim.counter("rmp_faults") + rig.sim.counter("gpt_faults"), 0U);
}

TEST_P(SeparateModelTest, ConversionsNeedASharedBacking) {
    ASSERT_OK(rig.vmm.attachTo(g));
    auto gmem = rig.vmm.guestMemory(kGuestRamGpa, kSize);
    ASSERT_OK(gmem);
    auto region = g.addMemory(trusted(), kGuestRamGpa, kSize, std::move(*gmem), 0, MemoryState::Private, std::nullopt);
    ASSERT_OK(region);
    EXPECT_FALSE(g.mappingRules(g.memory().at(*region)).shared_dma);
    const auto model = modelOf(g);
    const MemoryConversion c{kGuestRamGpa, 2 * kMiB, MemoryState::Shared};
    auto r = g.convertMemory(trusted(), {&c, 1});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Code::InvalidArgument);
    EXPECT_NE(r.error().message.find("shared-fd"), std::string::npos) << r.error().message;
    EXPECT_EQ(modelOf(g), model);
}

// Random conversions and hole punches on the separate model, the VMM keeping the
// contract (ConvertMemory before it makes a range private, after it made one
// shared) and its memslot's shared memory the memfd it gave the daemon: the oracle,
// which follows the hardware to the memfd pages, finds every shared page reachable
// on the shared path, no private page there and no stale mapping, and the device
// faulted only on pages a step converted.
TEST_P(SeparateModelTest, RandomConversionsFollowTheContract) {
    ASSERT_OK(rig.vmm.attachTo(g));
    auto gmem = rig.vmm.guestMemfd(kSize);
    ASSERT_OK(gmem);
    UniqueFd memfd = TestVmm::sharedMemory(kSize);
    ASSERT_TRUE(memfd);
    SharedMapping vmm_view(::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, memfd.get(), 0), kSize);
    ASSERT_TRUE(vmm_view);
    ASSERT_OK(rig.vmm.bindMemory(kGuestRamGpa, kSize, gmem->get(), 0, vmm_view.address()));
    ASSERT_OK(g.addMemory(trusted(), kGuestRamGpa, kSize, std::move(*gmem), 0, MemoryState::Shared,
                          core::SharedBacking{std::move(memfd), 0}));
    ASSERT_OK(bringUp(g, rig.vmm, kDevA, Stage::Device));  // no TSM on merged kernels
    rig.sim.setDmaGenerator(kDevA, 8, 3);
    auto clean = [&] {
        const auto audit = rig.sim.audit(kDevA);
        for (const char* rule : {"private_pages_exposed", "shared_pages_unreachable", "stale_shared_pages",
                                 "rmp_violating_leaves", "machine_checks"}) {
            EXPECT_EQ(audit.at(rule), 0U) << rule;
        }
    };
    clean();
    std::mt19937_64 rng(0x73 ^ std::hash<std::string>{}(GetParam()));
    for (int step = 0; step < 120; ++step) {
        SCOPED_TRACE("step " + std::to_string(step));
        const std::uint64_t pages = 1 + rng() % 48;
        const std::uint64_t gpa = kGuestRamGpa + (rng() % (kSize / 4096 - pages)) * 4096;
        if (rng() % 8 == 0) {
            ASSERT_OK(g.punchHole(trusted(), gpa, pages * 4096));
        } else if (rng() % 2 == 0) {
            toPrivate(gpa, pages * 4096);
        } else {
            toShared(gpa, pages * 4096);
        }
        ASSERT_FALSE(HasFatalFailure());
        for (const auto& f : rig.sim.takeDmaFaults()) {
            EXPECT_NE(f.outcome, "machine-check");
            EXPECT_TRUE(f.gpa >= gpa && f.gpa < gpa + pages * 4096) << std::hex << f.gpa << " " << f.outcome;
        }
        clean();
        if (HasFailure()) return;
    }
    EXPECT_EQ(rig.sim.counter("stale_shared_dma"), 0U);
    // A VMM that makes memory private without telling the daemon leaves stale
    // mappings of host pages, which the oracle sees; never a machine check.
    toShared(kGuestRamGpa, 64 * 1024);
    ASSERT_OK(rig.vmm.setAttributes(kGuestRamGpa, 64 * 1024, true));
    EXPECT_EQ(rig.sim.audit(kDevA).at("stale_shared_pages"), 16U);
    EXPECT_EQ(rig.sim.counter("machine_checks"), 0U);
}

INSTANTIATE_TEST_SUITE_P(Platforms, SeparateModelTest, ::testing::Values("tdx", "snp", "cca"),
                         [](const auto& p) { return std::string(p.param); });

// 7.4: in place, the attribute is the daemon's to set, on the guest_memfd; no
// guest_memfd by file, and this one (no GUEST_MEMFD_FLAG_MMAP) cannot be mapped by
// address either: shared pages reach no device, which the region says.
TEST(InPlaceWithoutMapFile, TheDaemonConvertsAndSaysSharedPagesAreNotMapped) {
    GuestRig rig{"tdx", "7.4"};
    core::Guest& g = *rig.guest;
    ASSERT_OK(rig.vmm.attachTo(g));
    ASSERT_EQ(g.vm()->model, core::MemoryModel::InPlace);
    auto gmem = rig.vmm.guestMemory(kGuestRamGpa, kSize);
    ASSERT_OK(gmem);
    auto region = g.addMemory(trusted(), kGuestRamGpa, kSize, std::move(*gmem), 0, MemoryState::Shared, std::nullopt);
    ASSERT_OK(region);
    EXPECT_EQ(g.vm()->gmem_map_file, std::optional<bool>(false));
    EXPECT_FALSE(g.mappingRules(g.memory().at(*region)).shared_dma);
    ASSERT_OK(bringUp(g, rig.vmm, kDevA, Stage::Device));
    const auto changes = rig.sim.counter("gmem_attribute_changes");
    const MemoryConversion c{kGuestRamGpa, 2 * kMiB, MemoryState::Private};
    ASSERT_OK(g.convertMemory(trusted(), {&c, 1}));
    EXPECT_EQ(rig.sim.counter("gmem_attribute_changes"), changes + 1) << "KVM_SET_MEMORY_ATTRIBUTES2 on the gmem";
    EXPECT_NE(rig.sim.layout(kDevA).find("| private 100000000-100200000"), std::string::npos) << rig.sim.layout(kDevA);
    EXPECT_EQ(rig.sim.dma(kDevA, rig.sim.sharedIova(kGuestRamGpa + 4 * kMiB), 4096, false), "iommu-fault");
    EXPECT_EQ(rig.sim.counter("machine_checks"), 0U);
}

// 7.4 with a mappable guest_memfd: shared pages are DMA-mapped by address through
// the daemon's own mmap, which the simulator resolves as GUP does, onto the
// guest_memfd's pages; conversions keep a shared IOPTE off private pages.
class InPlaceByAddressTest : public ::testing::TestWithParam<const char*> {};

TEST_P(InPlaceByAddressTest, SharedPagesAreMappedByAddressAndConversionsKeepTheRules) {
    GuestRig rig{GetParam(), "7.4"};
    core::Guest& g = *rig.guest;
    ASSERT_OK(rig.vmm.attachTo(g));
    auto gmem = rig.vmm.guestMemfd(kSize, {.mmap = true, .init_shared = true});
    ASSERT_OK(gmem);
    ASSERT_OK(rig.vmm.bindMemory(kGuestRamGpa, kSize, gmem->get()));
    auto region = g.addMemory(trusted(), kGuestRamGpa, kSize, std::move(*gmem), 0, MemoryState::Shared, std::nullopt);
    ASSERT_OK(region);
    const core::MemoryRegion& r = g.memory().at(*region);
    EXPECT_EQ(g.vm()->gmem_map_file, std::optional<bool>(false));
    EXPECT_TRUE(g.mappingRules(r).shared_dma) << "by address";
    EXPECT_EQ(g.mappedBytes(r), kSize);
    ASSERT_OK(bringUp(g, rig.vmm, kDevA, Stage::Device));
    auto dma = [&](std::uint64_t gpa) { return rig.sim.dma(kDevA, rig.sim.sharedIova(gpa), 4096, true); };
    EXPECT_EQ(dma(kGuestRamGpa + kMiB), "ok");

    const MemoryConversion to_private{kGuestRamGpa, 2 * kMiB, MemoryState::Private};
    ASSERT_OK(g.convertMemory(trusted(), {&to_private, 1}));
    EXPECT_NE(dma(kGuestRamGpa), "ok") << "unmapped before it became private";
    EXPECT_EQ(dma(kGuestRamGpa + 4 * kMiB), "ok") << "the rest stays mapped";
    const MemoryConversion back{kGuestRamGpa, 2 * kMiB, MemoryState::Shared};
    ASSERT_OK(g.convertMemory(trusted(), {&back, 1}));
    EXPECT_EQ(dma(kGuestRamGpa), "ok");
    EXPECT_EQ(rig.sim.counter("machine_checks"), 0U);
    EXPECT_EQ(rig.sim.counter("rmp_faults") + rig.sim.counter("gpt_faults"), 0U);
}

// Random conversions and hole punches on the 7.4 model (page areas, mapped by
// address) with the DMA generator on between every two kernel calls: the oracle's
// safety rules hold after every step (no private page on a shared path, every
// shared page reachable, no machine check), the device faulted only on pages the
// step was converting, and the daemon's private ranges are the kernel's. (The
// ideal-layout figures measure hitless huge IOPTEs, which this kernel cannot do.)
TEST_P(InPlaceByAddressTest, RandomConversionsKeepTheOracleClean) {
    constexpr std::uint64_t kRegion = 16 * kMiB;
    GuestRig rig{GetParam(), "7.4"};
    core::Guest& g = *rig.guest;
    ASSERT_OK(rig.vmm.attachTo(g));
    auto gmem = rig.vmm.guestMemfd(kRegion, {.mmap = true, .init_shared = true});
    ASSERT_OK(gmem);
    ASSERT_OK(rig.vmm.bindMemory(kGuestRamGpa, kRegion, gmem->get()));
    ASSERT_OK(g.addMemory(trusted(), kGuestRamGpa, kRegion, std::move(*gmem), 0, MemoryState::Shared, std::nullopt));
    ASSERT_OK(bringUp(g, rig.vmm, kDevA, Stage::Device));  // no TSM on merged kernels
    rig.sim.setDmaGenerator(kDevA, 8, 5);
    std::mt19937_64 rng(0x74 ^ std::hash<std::string>{}(GetParam()));
    for (int step = 0; step < 150; ++step) {
        SCOPED_TRACE("step " + std::to_string(step));
        const std::uint64_t pages = 1 + rng() % 64;
        const std::uint64_t gpa = kGuestRamGpa + (rng() % (kRegion / 4096 - pages)) * 4096;
        if (rng() % 8 == 0) {
            ASSERT_OK(g.punchHole(trusted(), gpa, pages * 4096));
        } else {
            const MemoryConversion c{gpa, pages * 4096, rng() % 2 == 0 ? MemoryState::Private : MemoryState::Shared};
            ASSERT_OK(g.convertMemory(trusted(), {&c, 1}));
        }
        for (const auto& f : rig.sim.takeDmaFaults()) {
            EXPECT_NE(f.outcome, "machine-check");
            EXPECT_TRUE(f.gpa >= gpa && f.gpa < gpa + pages * 4096) << std::hex << f.gpa << " " << f.outcome;
        }
        const auto audit = rig.sim.audit(kDevA);
        for (const char* rule : {"private_pages_exposed", "shared_pages_unreachable", "private_pages_unmapped",
                                 "rmp_violating_leaves", "unsafe_replacements", "machine_checks"}) {
            ASSERT_EQ(audit.at(rule), 0U) << rule;
        }
    }
    // The daemon's record of private memory is the kernel's.
    std::vector<std::pair<std::uint64_t, std::uint64_t>> runs;  // merged: revoked or not is the same attribute
    for (const auto& [id, m] : g.memory()) {
        for (const auto& run : m.states.all()) {
            if (run.value.attr != MemoryState::Private) continue;
            if (!runs.empty() && runs.back().second == run.start) runs.back().second = run.end;
            else runs.emplace_back(run.start, run.end);
        }
    }
    std::ostringstream daemon_private;
    for (const auto& [s, e] : runs) daemon_private << " " << std::hex << s << "-" << e;
    const std::string layout = rig.sim.layout(kDevA);
    const auto at = layout.find("| private");
    EXPECT_EQ(at == std::string::npos ? "" : layout.substr(at + 9), daemon_private.str());
}

INSTANTIATE_TEST_SUITE_P(Platforms, InPlaceByAddressTest, ::testing::Values("tdx", "snp", "cca"),
                         [](const auto& p) { return std::string(p.param); });

}  // namespace
}  // namespace tio::test
