// Conversions and hole punching on all three platforms against the simulated
// hardware (issue 4). The simulator is the oracle: after every step its audit must
// find the IOMMU layout to be exactly the one the platform rules derive from the
// memory state, and the DMA generator, which runs between every two kernel calls,
// may only have faulted on pages the step itself was converting.
#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "support/eventually.hpp"
#include "support/model_of.hpp"
#include "support/running_guest.hpp"
#include "support/trusted_caller.hpp"

namespace tio::test {
namespace {

using core::MemoryConversion;
using core::MemoryState;

constexpr std::uint64_t kPage = 4096;
constexpr std::uint64_t k2M = 2 * kMiB;

class ConversionTest : public ::testing::TestWithParam<const char*> {
protected:
    void SetUp() override {
        guest.bringUp();
        ASSERT_FALSE(HasFatalFailure());
        // The test's own record of every page: what the daemon must agree with.
        model.assign((RunningGuest::kEnd - RunningGuest::kStart) / kPage, kSharedPage);
        std::fill_n(model.begin(), RunningGuest::kSizeA / kPage, kPrivatePage);
        model_private_pages = RunningGuest::kSizeA / kPage;
        ASSERT_EQ(guest.auditFindings(), "");
    }

    static constexpr std::uint8_t kSharedPage = 0;
    static constexpr std::uint8_t kPrivatePage = 1;

    void record(std::uint64_t gpa, std::uint64_t size, MemoryState to) {
        const std::uint8_t v = to == MemoryState::Private ? kPrivatePage : kSharedPage;
        const std::uint64_t first = (gpa - RunningGuest::kStart) / kPage;
        for (std::uint64_t p = first; p < first + size / kPage; ++p) {
            if (model[p] == v) continue;
            model_private_pages += v == kPrivatePage ? 1 : -1;
            model[p] = v;
        }
    }
    [[nodiscard]] std::uint64_t modelPrivateBytes() const { return model_private_pages * kPage; }
    [[nodiscard]] std::uint64_t daemonPrivateBytes() const {
        std::uint64_t n = 0;
        for (const auto& [id, m] : g().memory()) n += m.private_bytes;
        return n;
    }
    // The bytes the daemon says the IOMMU maps (from its counts) against a walk of
    // every run through the platform rules.
    void expectMappedBytesMatchTheRuns(int step) const {
        for (const auto& [id, m] : g().memory()) {
            const core::MappingRules rules = g().mappingRules(m);
            std::uint64_t walked = 0;
            m.states.forEach(m.gpa, m.end(), [&](std::uint64_t s, std::uint64_t e, const core::PageState& st) {
                if (core::iommuView(rules, st).mapped) walked += e - s;
            });
            ASSERT_EQ(g().mappedBytes(m), walked) << "region " << id << ", step " << step;
        }
    }
    [[nodiscard]] core::Guest& g() const { return *guest.rig.guest; }

    // A random range: 4 KiB to 1 GiB, aligned or not, anywhere in guest memory.
    MemoryConversion randomRange(std::mt19937_64& rng) {
        const std::uint64_t span = RunningGuest::kEnd - RunningGuest::kStart;
        std::uint64_t size = 0;
        std::uint64_t gpa = 0;
        switch (rng() % 6) {
            case 0: size = kPage * (1 + rng() % 16); break;
            case 1: size = k2M; break;
            case 2: size = k2M * (1 + rng() % 4) + kPage * (rng() % 512); break;
            case 3: size = kPage * (1 + rng() % 4096); break;
            case 4: size = kMiB * (1 + rng() % 64); break;
            default: size = (rng() % 8 == 0) ? kGiB : kPage; break;
        }
        size = std::min(size, span);
        const bool aligned = size >= k2M && rng() % 2 == 0;
        const std::uint64_t unit = aligned ? (size >= kGiB ? kGiB : k2M) : kPage;
        gpa = RunningGuest::kStart + ((rng() % ((span - size) / unit + 1)) * unit);
        return {gpa, size, rng() % 2 == 0 ? MemoryState::Private : MemoryState::Shared};
    }

    // Faults since the last look, each on a page one of `touched` covered.
    void expectFaultsOnlyIn(const std::vector<std::pair<std::uint64_t, std::uint64_t>>& touched, int step) {
        for (const auto& f : guest.rig.sim.takeDmaFaults()) {
            EXPECT_NE(f.outcome, "machine-check") << "step " << step << " gpa " << std::hex << f.gpa;
            const bool inside = std::any_of(touched.begin(), touched.end(), [&](const auto& r) {
                return f.gpa >= r.first && f.gpa < r.first + r.second;
            });
            EXPECT_TRUE(inside) << "step " << step << ": DMA to untouched page " << std::hex << f.gpa << " -> "
                                << f.outcome;
        }
    }

    RunningGuest guest{GetParam()};
    std::vector<std::uint8_t> model;
    std::uint64_t model_private_pages = 0;
};

TEST_P(ConversionTest, RandomConversionsAndPunchesKeepTheOracleClean) {
    std::mt19937_64 rng(0x7105eedULL ^ std::hash<std::string>{}(GetParam()));
    guest.rig.sim.setDmaGenerator(kDevA, 8, rng());
    std::uint64_t conversions = 0;
    std::uint64_t punches = 0;
    for (int step = 0; step < 3000; ++step) {
        std::vector<std::pair<std::uint64_t, std::uint64_t>> touched;
        const unsigned kind = rng() % 20;
        if (kind == 0) {
            // Punch a hole: revoked pages stay unmapped until converted again.
            MemoryConversion r = randomRange(rng);
            r.size = std::min<std::uint64_t>(r.size, 8 * kMiB);
            auto revoked = g().punchHole(trusted(), r.gpa, r.size);
            ASSERT_OK(revoked) << "step " << step;
            for (const auto& rv : *revoked) {
                EXPECT_GE(rv.gpa, r.gpa) << "with hitless cuts nothing outside the hole is revoked";
                EXPECT_LE(rv.gpa + rv.size, r.gpa + r.size);
            }
            touched.emplace_back(r.gpa, r.size);
            ++punches;
        } else {
            std::vector<MemoryConversion> batch{randomRange(rng)};
            if (kind < 6) {  // a batch, ranges free to overlap
                const std::size_t n = 2 + rng() % 7;
                while (batch.size() < n) batch.push_back(randomRange(rng));
            }
            ASSERT_OK(g().convertMemory(trusted(), batch)) << "step " << step;
            for (const auto& c : batch) {
                record(c.gpa, c.size, c.to);
                touched.emplace_back(c.gpa, c.size);
            }
            conversions += batch.size();
        }
        expectFaultsOnlyIn(touched, step);
        ASSERT_EQ(guest.auditFindings(), "") << "step " << step;
        ASSERT_EQ(daemonPrivateBytes(), modelPrivateBytes()) << "step " << step;
        expectMappedBytesMatchTheRuns(step);
        ASSERT_FALSE(HasFatalFailure()) << "step " << step;
    }
    EXPECT_EQ(g().conversions(), conversions);
    EXPECT_GT(conversions, 5000U) << "thousands of conversions";
    const auto c = guest.rig.sim.counters();
    EXPECT_EQ(c.at("machine_checks"), 0U);
    EXPECT_EQ(c.at("gmem_violations"), 0U) << "the daemon revokes before it punches";
    EXPECT_EQ(c.at("unsafe_replacements"), 0U);
    EXPECT_GT(c.at("gen_dma"), 20000U) << "the generator really ran";
    EXPECT_GT(c.at("iopte_split") + c.at("iopte_merge"), 0U);
    if (std::string_view(GetParam()) == "snp") {
        EXPECT_EQ(c.at("rmp_faults"), 0U) << "SNP conversions never unmap: no DMA may fault at all";
    }
    EXPECT_EQ(c.at("gpt_faults"), 0U);

    // Uniform again: the huge entries come back.
    const MemoryConversion all_private{RunningGuest::kStart, RunningGuest::kEnd - RunningGuest::kStart,
                                       MemoryState::Private};
    const MemoryConversion all_shared{all_private.gpa, all_private.size, MemoryState::Shared};
    ASSERT_OK(g().convertMemory(trusted(), {&all_private, 1}));
    ASSERT_OK(g().convertMemory(trusted(), {&all_shared, 1}));
    ASSERT_EQ(guest.auditFindings(), "");
    const auto a = guest.rig.sim.audit(kDevA);
    // Region A: two 1 GiB entries. Region B (file offset only 4 MiB-aligned): 2 MiB
    // entries, one per 2 MiB of its 1 GiB + 6 MiB.
    EXPECT_EQ(a.at("actual_leaves"), a.at("ideal_leaves"));
    EXPECT_EQ(a.at("actual_leaves"), 2U + (RunningGuest::kSizeB / k2M));
}

TEST_P(ConversionTest, OneSmallConversionSplitsHitlesslyAndMergesBack) {
    guest.rig.sim.setDmaGenerator(kDevA, 64, 7);
    const auto before = guest.rig.sim.counters();
    const std::uint64_t leaves_before = guest.rig.sim.audit(kDevA).at("actual_leaves");
    // One 4 KiB page in the middle of region A's first 1 GiB (private -> shared).
    const MemoryConversion one{RunningGuest::kRegionA + 300 * kMiB + 5 * kPage, kPage, MemoryState::Shared};
    ASSERT_OK(g().convertMemory(trusted(), {&one, 1}));
    EXPECT_EQ(guest.auditFindings(), "");
    const auto mid = guest.rig.sim.counters();
    EXPECT_EQ(mid.at("pages_unmapped") - before.at("pages_unmapped"), 0U) << "nothing was unmapped";
    expectFaultsOnlyIn({{one.gpa, one.size}}, 0);
    const MemoryConversion back{one.gpa, one.size, MemoryState::Private};
    ASSERT_OK(g().convertMemory(trusted(), {&back, 1}));
    EXPECT_EQ(guest.auditFindings(), "");
    EXPECT_EQ(guest.rig.sim.audit(kDevA).at("actual_leaves"), leaves_before) << "merged back to the same table";
    const auto after = guest.rig.sim.counters();
    if (std::string_view(GetParam()) == "snp") {
        EXPECT_GT(mid.at("iopte_split"), before.at("iopte_split")) << "the 2 MiB entry was split in place";
        EXPECT_GT(after.at("iopte_merge"), mid.at("iopte_merge"));
    }
    EXPECT_EQ(after.at("machine_checks") + after.at("rmp_faults") + after.at("gpt_faults"), 0U);
}

TEST_P(ConversionTest, SharedToPrivateUnmapsOnlyThatRangeAndTheDeviceFeelsIt) {
    // Region B is shared: take 8 KiB of it private, in the middle of a 2 MiB entry.
    const std::uint64_t gpa = RunningGuest::kRegionB + 64 * kMiB + 12 * kPage;
    const MemoryConversion c{gpa, 2 * kPage, MemoryState::Private};
    ASSERT_OK(g().convertMemory(trusted(), {&c, 1}));
    EXPECT_EQ(guest.auditFindings(), "");
    SimProcess& sim = guest.rig.sim;
    const std::string platform = GetParam();
    // The neighbours are still reachable through the shared path.
    EXPECT_EQ(sim.dma(kDevA, sim.sharedIova(gpa - kPage), kPage, true), "ok");
    EXPECT_EQ(sim.dma(kDevA, sim.sharedIova(gpa + 2 * kPage), kPage, true), "ok");
    if (platform == "snp") {
        // Both kinds at their GPA; a TDI in RUN reaches the private page through a 4 KiB entry.
        EXPECT_EQ(sim.dma(kDevA, gpa, kPage, true), "ok");
    } else {
        EXPECT_EQ(sim.dma(kDevA, sim.sharedIova(gpa), kPage, true), "iommu-fault") << "unmapped on the shared side";
        EXPECT_EQ(sim.dma(kDevA, gpa, kPage, true), "ok") << "the secure path, TDI in RUN";
    }
    EXPECT_EQ(sim.counter("machine_checks"), 0U);
}

TEST_P(ConversionTest, PunchHoleRevokesCutsAndPunches) {
    const std::uint64_t gpa = RunningGuest::kRegionB + 10 * kMiB + 3 * kPage;
    const auto before = guest.rig.sim.counters();
    auto revoked = g().punchHole(trusted(), gpa, 5 * kPage);
    ASSERT_OK(revoked);
    ASSERT_EQ(revoked->size(), 1U);
    EXPECT_EQ((*revoked)[0], (core::RevokedRange{gpa, 5 * kPage})) << "cut hitlessly: exactly the hole";
    EXPECT_EQ(g().revocations(), 1U);
    const auto after = guest.rig.sim.counters();
    EXPECT_EQ(after.at("gmem_punched_pages") - before.at("gmem_punched_pages"), 5U);
    EXPECT_EQ(after.at("gmem_violations"), 0U);
    EXPECT_EQ(after.at("pages_unmapped") - before.at("pages_unmapped"), 5U);
    EXPECT_EQ(guest.auditFindings(), "");
    EXPECT_EQ(guest.rig.sim.dma(kDevA, guest.rig.sim.sharedIova(gpa), kPage, false), "iommu-fault");
    // Converting the range again maps it again.
    const MemoryConversion again{gpa, 5 * kPage, MemoryState::Shared};
    ASSERT_OK(g().convertMemory(trusted(), {&again, 1}));
    EXPECT_EQ(guest.rig.sim.dma(kDevA, guest.rig.sim.sharedIova(gpa), kPage, false), "ok");
    EXPECT_EQ(guest.auditFindings(), "");
}

TEST_P(ConversionTest, BadRangesAreRefusedAndChangeNothing) {
    const std::string before = modelOf(g());
    const std::string layout = guest.rig.sim.layout(kDevA);
    auto expect = [&](std::vector<MemoryConversion> ranges, Code code) {
        auto r = g().convertMemory(trusted(), ranges);
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error().code, code) << r.error().message;
    };
    const MemoryConversion good{RunningGuest::kRegionA, kPage, MemoryState::Shared};
    expect({}, Code::InvalidArgument);
    expect({{RunningGuest::kRegionA + 1, kPage, MemoryState::Shared}}, Code::InvalidArgument);
    expect({{RunningGuest::kRegionA, 0, MemoryState::Shared}}, Code::InvalidArgument);
    expect({{RunningGuest::kRegionA, kPage + 1, MemoryState::Shared}}, Code::InvalidArgument);
    expect({{UINT64_MAX - kPage + 1, 2 * kPage, MemoryState::Shared}}, Code::InvalidArgument);
    expect({{0, kPage, MemoryState::Shared}}, Code::InvalidArgument);  // not guest memory
    expect({{RunningGuest::kEnd - kPage, 2 * kPage, MemoryState::Shared}}, Code::InvalidArgument);
    expect({good, {RunningGuest::kEnd, kPage, MemoryState::Private}}, Code::InvalidArgument);  // the 2nd is bad
    expect(std::vector<MemoryConversion>(core::kMaxConversionsPerCall + 1, good), Code::LimitExceeded);
    EXPECT_FALSE(g().punchHole(trusted(), RunningGuest::kEnd, kPage));
    EXPECT_FALSE(g().punchHole(trusted(), RunningGuest::kRegionA, 0));
    EXPECT_EQ(modelOf(g()), before);
    EXPECT_EQ(guest.rig.sim.layout(kDevA), layout);
}

// One call may not hold the daemon for long: a batch whose plan needs more kernel
// work than kMaxKernelCallsPerCall is refused with LimitExceeded and rolled back, having
// made at most that many calls and their undo; one under it runs.
TEST_P(ConversionTest, ABatchOverTheKernelCallBudgetIsRefusedAndRolledBack) {
    // Every other page of region A shared: each range splits, converts and maps.
    std::vector<MemoryConversion> scattered;
    for (std::uint64_t i = 0; i < 12000; ++i) {
        scattered.push_back({RunningGuest::kRegionA + 2 * i * kPage, kPage, MemoryState::Shared});
    }
    const std::string before = modelOf(g());
    const std::string layout = guest.rig.sim.layout(kDevA);
    const auto calls = guest.faults->calls();
    auto r = g().convertMemory(trusted(), scattered);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Code::LimitExceeded) << r.error().message;
    EXPECT_LE(guest.faults->calls() - calls, 2 * core::kMaxKernelCallsPerCall + 16) << "the work done, and undone";
    EXPECT_EQ(modelOf(g()), before);
    EXPECT_EQ(guest.rig.sim.layout(kDevA), layout);
    EXPECT_EQ(guest.auditFindings(), "");
    scattered.resize(1000);
    ASSERT_OK(g().convertMemory(trusted(), scattered));
    EXPECT_EQ(guest.auditFindings(), "");
}

// A memory call the kernel does not answer in time may still be done: the call fails
// (Kernel, ETIMEDOUT) and what it reached is closed as after a failed undo: revoked,
// reported, unmapped once the kernel answers again. The VMM converts it again.
TEST_P(ConversionTest, AConversionTheKernelDoesNotAnswerInTimeFailsClosed) {
    const MemoryConversion one{RunningGuest::kRegionA + 64 * kMiB, 2 * kMiB, MemoryState::Shared};
    guest.rig.sys->setCallTimeout(std::chrono::milliseconds(100));
    guest.rig.sim.injectFailure("KVM_SET_MEMORY_ATTRIBUTES2", 1, "ETIMEDOUT");  // hangs 1 s, then converts
    auto r = g().convertMemory(trusted(), {&one, 1});
    guest.rig.sys->setCallTimeout(kernel::SimSyscalls::kDefaultCallTimeout);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Code::Kernel);
    EXPECT_NE(r.error().message.find("ETIMEDOUT"), std::string::npos) << r.error().message;
    const auto closed = g().takeFailedClosed();
    ASSERT_FALSE(closed.empty()) << "an unknown outcome fails closed";
    EXPECT_LE(closed.front().gpa, one.gpa);
    EXPECT_GE(closed.front().gpa + closed.front().size, one.gpa + one.size);
    // While the kernel is still in the hung call, nothing waits the bound out again:
    // the next conversion fails at once and changes nothing.
    const auto uncertain = g().uncertainWindows();
    EXPECT_FALSE(uncertain.empty());
    auto early = g().convertMemory(trusted(), {&one, 1});
    ASSERT_FALSE(early);
    EXPECT_EQ(early.error().code, Code::Kernel);
    EXPECT_EQ(g().uncertainWindows(), uncertain);
    // Once it answers again, a conversion closes what is left first, then runs.
    EXPECT_TRUE(eventually([&] { return g().convertMemory(trusted(), {&one, 1}).has_value(); }));
    EXPECT_TRUE(g().uncertainWindows().empty());
    std::vector<MemoryConversion> heal;
    for (const auto& w : closed) heal.push_back({w.gpa, w.size, MemoryState::Private});
    heal.push_back(one);
    ASSERT_OK(g().convertMemory(trusted(), heal));
    EXPECT_EQ(guest.auditFindings(), "");
}

TEST_P(ConversionTest, ARangeAcrossTwoRegionsConverts) {
    const MemoryConversion across{RunningGuest::kRegionB - 4 * kMiB, 8 * kMiB, MemoryState::Shared};
    ASSERT_OK(g().convertMemory(trusted(), {&across, 1}));
    EXPECT_EQ(guest.auditFindings(), "");
    EXPECT_EQ(daemonPrivateBytes(), RunningGuest::kSizeA - 4 * kMiB);
}

INSTANTIATE_TEST_SUITE_P(Platforms, ConversionTest, ::testing::Values("tdx", "snp", "cca"));

}  // namespace
}  // namespace tio::test
