// fail-nth over a batched conversion and a hole punch (issue 4): for n = 1, 2, ...
// the n-th kernel call of the operation fails. The operation must fail with a named
// error and leave everything as it was: the daemon's record, the simulator's page
// table and memory attributes (its Layout), and the oracle's audit; the DMA
// generator may have faulted only on pages the batch was converting. The sweep ends
// when the operation makes fewer than n calls, so every call has failed once.
#include <gtest/gtest.h>

#include <functional>

#include "kernel/ioctl_table.hpp"
#include "kernel/kernel_error.hpp"
#include "persist/snapshot_codec.hpp"
#include "support/model_of.hpp"
#include "support/running_guest.hpp"
#include "support/trusted_caller.hpp"

namespace tio::test {
namespace {

using core::MemoryConversion;
using core::MemoryState;

constexpr std::uint64_t kPage = 4096;

struct Sweep {
    const char* platform;
    const char* errno_name;
};

void PrintTo(const Sweep& s, std::ostream* os) { *os << s.platform << "/" << s.errno_name; }

class ConversionFailNthTest : public ::testing::TestWithParam<Sweep> {
protected:
    void SetUp() override {
        guest.bringUp();
        ASSERT_FALSE(HasFatalFailure());
        guest.rig.sim.setDmaGenerator(kDevA, 16, 99);
    }

    // Runs `op` with its n-th kernel call failing, for every n, then once clean.
    // `touched`: where DMA faults are expected while it runs.
    void sweep(const std::function<Result<>()>& op,
               const std::vector<std::pair<std::uint64_t, std::uint64_t>>& touched) {
        const int err = kernel::errnoFromName(GetParam().errno_name);
        for (unsigned n = 1;; ++n) {
            ASSERT_LT(n, 400U) << "the sweep does not terminate";
            SCOPED_TRACE("failing call " + std::to_string(n));
            const std::string model = modelOf(g());
            const std::string layout = guest.rig.sim.layout(kDevA);
            guest.faults->armFailNth(n, err);
            auto r = op();
            const bool injected = guest.faults->consumed();
            guest.faults->armFailNth(0, 0);
            checkFaults(touched);
            if (!injected) {
                ASSERT_TRUE(r) << r.error().message;
                EXPECT_GT(n, 3U) << "the operation made fewer kernel calls than expected; is the sweep real?";
                std::printf("swept %u kernel calls\n", n - 1);
                break;
            }
            ASSERT_FALSE(r) << "the injected failure was swallowed";
            EXPECT_NE(r.error().code, Code::Internal) << r.error().message;
            EXPECT_EQ(modelOf(g()), model) << "the failed batch changed the record";
            EXPECT_EQ(guest.rig.sim.layout(kDevA), layout) << "the failed batch changed the kernel";
            ASSERT_EQ(guest.auditFindings(), "");
        }
        ASSERT_EQ(guest.auditFindings(), "");
    }

    void checkFaults(const std::vector<std::pair<std::uint64_t, std::uint64_t>>& touched) {
        for (const auto& f : guest.rig.sim.takeDmaFaults()) {
            EXPECT_NE(f.outcome, "machine-check");
            EXPECT_TRUE(std::any_of(touched.begin(), touched.end(),
                                    [&](const auto& t) { return f.gpa >= t.first && f.gpa < t.first + t.second; }))
                << "DMA fault on an untouched page " << std::hex << f.gpa << ": " << f.outcome;
        }
    }

    // After a call that failed twice: the host is safe (no private page reachable
    // through the IOMMU, no RMP-violating leaf, no stale shared page), and DMA faulted
    // only on `touched` and on what was closed, which reaches past the ranges to whole
    // IOAS areas (the VMM hears of all of it: MemoryRevoked). Returns what was closed.
    std::vector<core::RevokedRange> expectSafe(std::vector<std::pair<std::uint64_t, std::uint64_t>>& touched) {
        auto closed_windows = g().takeFailedClosed();
        for (const auto& w : closed_windows) touched.emplace_back(w.gpa, w.size);
        checkFaults(touched);
        const auto audit = guest.rig.sim.audit(kDevA);
        for (const char* unsafe : {"private_pages_exposed", "rmp_violating_leaves", "stale_shared_pages"}) {
            EXPECT_EQ(audit.at(unsafe), 0U) << unsafe;
        }
        return closed_windows;
    }

    // Uniform ranges, so that each can be put back by one conversion: private to
    // shared in region A, shared to private in region B.
    const std::vector<MemoryConversion> forward_ = {
        {RunningGuest::kRegionA + 2 * kMiB, 2 * kMiB + 3 * kPage, MemoryState::Shared},
        {RunningGuest::kRegionB + 7 * kPage, 9 * kPage, MemoryState::Private},
    };

    // What a VMM does on MemoryRevoked after a failed undo: converts the windows to the
    // states it knows (the record's), which maps them again.
    void heal(const std::vector<core::RevokedRange>& windows) {
        std::vector<MemoryConversion> again;
        for (const auto& w : windows) {
            for (const auto& [id, region] : g().memory()) {
                const auto from = std::max(w.gpa, region.gpa);
                const auto to = std::min(w.gpa + w.size, region.end());
                if (from >= to) continue;
                for (const auto& run : region.states.runs(from, to)) {
                    again.push_back({run.start, run.end - run.start, run.value.attr});
                }
            }
        }
        if (again.empty()) return;
        auto healed = g().convertMemory(trusted(), again);
        ASSERT_TRUE(healed) << healed.error().message;
    }

    [[nodiscard]] core::Guest& g() const { return *guest.rig.guest; }

    RunningGuest guest{GetParam().platform};
};

TEST_P(ConversionFailNthTest, EveryCallOfABatchFailsOnceAndTheWholeBatchRollsBack) {
    // Both directions, both regions, one range across them, splits, joins, limits.
    const std::vector<MemoryConversion> batch = {
        {RunningGuest::kRegionA + 5 * kPage, 3 * kPage, MemoryState::Shared},
        {RunningGuest::kRegionA + 2 * kMiB, 2 * kMiB, MemoryState::Shared},
        {RunningGuest::kRegionB + 7 * kPage, 9 * kPage, MemoryState::Private},
        {RunningGuest::kRegionB - 2 * kMiB, 4 * kMiB + kPage, MemoryState::Private},
        {RunningGuest::kRegionA + 4 * kPage, 2 * kPage, MemoryState::Private},
        {RunningGuest::kRegionA + 2 * kMiB + kPage, kPage, MemoryState::Private},
    };
    std::vector<std::pair<std::uint64_t, std::uint64_t>> touched;
    for (const auto& c : batch) touched.emplace_back(c.gpa, c.size);
    sweep([&] { return g().convertMemory(trusted(), batch); }, touched);
    EXPECT_EQ(g().conversions(), batch.size()) << "counted once, for the run that succeeded";
}

// Double failures (issue 12): the n-th call fails and so does every call after it,
// every undo included. The host must stay safe all the same: no private page
// reachable through the IOMMU, no machine check, RMP or GPT fault; what could not be
// put back is revoked (MemoryRevoked, a "memory-uncertain" fault); and converting
// the ranges again brings the kernel back to a clean audit.
TEST_P(ConversionFailNthTest, WhenEveryUndoFailsTooNothingPrivateIsEverMappedShared) {
    const int err = kernel::errnoFromName(GetParam().errno_name);
    const auto& forward = forward_;
    const std::vector<MemoryConversion> back = {
        {RunningGuest::kRegionA + 2 * kMiB, 2 * kMiB + 3 * kPage, MemoryState::Private},
        {RunningGuest::kRegionB + 7 * kPage, 9 * kPage, MemoryState::Shared},
    };
    std::vector<std::pair<std::uint64_t, std::uint64_t>> touched;
    for (const auto& c : forward) touched.emplace_back(c.gpa, c.size);
    unsigned closed = 0;
    for (unsigned n = 1;; ++n) {
        ASSERT_LT(n, 400U) << "the sweep does not terminate";
        SCOPED_TRACE("failing every call from " + std::to_string(n));
        const auto revocations = g().revocations();
        guest.faults->armFailFrom(n, err);
        auto r = g().convertMemory(trusted(), forward);
        const bool injected = guest.faults->consumed();
        guest.faults->armFailNth(0, 0);
        const auto closed_windows = expectSafe(touched);
        if (!injected) {
            ASSERT_TRUE(r) << r.error().message;
            break;
        }
        ASSERT_FALSE(r);
        EXPECT_NE(r.error().code, Code::Internal) << r.error().message;
        if (!closed_windows.empty()) ++closed;
        EXPECT_EQ(closed_windows.empty(), g().revocations() == revocations);
        // Every call failed, the closing's too: the windows wait, in the snapshot, to
        // be closed before the next conversion (or on restore).
        EXPECT_EQ(closed_windows.empty(), g().uncertainWindows().empty());
        if (!closed_windows.empty()) {
            std::map<std::string, UniqueFd> no_fds;
            const auto image = persist::decode(persist::encode(g(), "test"), no_fds);
            EXPECT_EQ(image.uncertain, g().uncertainWindows()) << "the snapshot keeps them";
        }
        heal(closed_windows);
        EXPECT_TRUE(g().uncertainWindows().empty()) << "closed before the VMM's conversion ran";
        auto healed = g().convertMemory(trusted(), forward);
        ASSERT_TRUE(healed) << healed.error().message;
        auto back_again = g().convertMemory(trusted(), back);
        ASSERT_TRUE(back_again) << back_again.error().message;
        checkFaults(touched);
        ASSERT_EQ(guest.auditFindings(), "");
    }
    std::printf("%u double failures left a range revoked\n", closed);
    if (g().vm()->model == core::MemoryModel::InPlace) {
        EXPECT_GT(closed, 0U) << "some undo of an attribute change must have failed and closed";
    }
}

// Double failures, one at a time: the n-th call fails and so does the m-th call
// after it (an undo step, or the closing), every other call succeeds. Each pair
// leaves the host safe and, after the VMM converts what was revoked, clean.
TEST_P(ConversionFailNthTest, EveryPairOfFailuresLeavesTheHostSafe) {
    const int err = kernel::errnoFromName(GetParam().errno_name);
    unsigned pairs = 0;
    unsigned closed = 0;
    for (unsigned n = 1;; ++n) {
        ASSERT_LT(n, 400U) << "the sweep does not terminate";
        bool first_hit = false;
        for (unsigned m = 1;; ++m) {
            SCOPED_TRACE("failing call " + std::to_string(n) + " and the " + std::to_string(m) + "-th after it");
            ASSERT_LT(m, 400U);
            const auto model = modelOf(g());
            guest.faults->armFailTwice(n, m, err);
            auto r = g().convertMemory(trusted(), forward_);
            first_hit = guest.faults->consumed();
            const bool second_hit = guest.faults->secondConsumed();
            guest.faults->armFailNth(0, 0);
            std::vector<std::pair<std::uint64_t, std::uint64_t>> touched;
            for (const auto& c : forward_) touched.emplace_back(c.gpa, c.size);
            const auto closed_windows = expectSafe(touched);
            if (!first_hit) {
                ASSERT_TRUE(r) << r.error().message;
                break;
            }
            ASSERT_FALSE(r);
            EXPECT_NE(r.error().code, Code::Internal) << r.error().message;
            if (closed_windows.empty()) {
                // The second failure missed every undo: a plain rollback.
                EXPECT_EQ(modelOf(g()), model);
            } else {
                ++closed;
                heal(closed_windows);
                checkFaults(touched);  // DMA that met the window before it was mapped again
            }
            ASSERT_EQ(guest.auditFindings(), "");
            ++pairs;
            if (!second_hit) break;  // past the last call the failed operation makes
        }
        if (!first_hit) break;
    }
    std::printf("%u failure pairs, %u closed a window\n", pairs, closed);
    EXPECT_GT(pairs, 10U) << "is the sweep real?";
}

// In place, the kernel may convert part of a range and stop (EAGAIN with
// error_offset, as a pinned page makes it): the simulator does that on the n-th
// attribute call, and the daemon must put back what that call did and undo the
// rest of the batch, as for any other failure.
TEST_P(ConversionFailNthTest, APartialInPlaceConversionIsRolledBack) {
    ASSERT_EQ(g().vm()->model, core::MemoryModel::InPlace);
    const std::vector<MemoryConversion> batch = {
        {RunningGuest::kRegionA + 2 * kMiB, 2 * kMiB, MemoryState::Shared},
        {RunningGuest::kRegionB + 7 * kPage, 9 * kPage, MemoryState::Private},
        {RunningGuest::kRegionA + 5 * kPage, 3 * kPage, MemoryState::Shared},
    };
    std::vector<std::pair<std::uint64_t, std::uint64_t>> touched;
    for (const auto& c : batch) touched.emplace_back(c.gpa, c.size);
    for (unsigned n = 1;; ++n) {
        ASSERT_LT(n, 50U) << "the sweep does not terminate";
        SCOPED_TRACE("partial on attribute call " + std::to_string(n));
        const std::string model = modelOf(g());
        const std::string layout = guest.rig.sim.layout(kDevA);
        const auto changes = guest.rig.sim.counter("gmem_attribute_changes");
        guest.rig.sim.injectFailure("KVM_SET_MEMORY_ATTRIBUTES2", n, "EAGAIN");
        auto r = g().convertMemory(trusted(), batch);
        checkFaults(touched);
        if (guest.rig.sim.counter("failures_pending") != 0) {
            ASSERT_TRUE(r) << r.error().message;
            EXPECT_EQ(n, batch.size() + 1) << "one attribute call per range";
            break;
        }
        ASSERT_FALSE(r) << "the partial conversion was swallowed";
        EXPECT_EQ(r.error().code, Code::Kernel) << r.error().message;
        EXPECT_NE(r.error().message.find("EAGAIN"), std::string::npos) << r.error().message;
        EXPECT_GT(guest.rig.sim.counter("gmem_attribute_changes"), changes) << "the kernel did convert a part";
        EXPECT_EQ(modelOf(g()), model) << "the failed batch changed the record";
        EXPECT_EQ(guest.rig.sim.layout(kDevA), layout) << "the partial conversion was not put back";
        ASSERT_EQ(guest.auditFindings(), "");
    }
    ASSERT_EQ(guest.auditFindings(), "");
}

TEST_P(ConversionFailNthTest, EveryCallOfAPunchFailsOnceAndNothingIsRevoked) {
    const std::uint64_t gpa = RunningGuest::kRegionB + 3 * kMiB + 5 * kPage;
    const std::uint64_t size = 2 * kMiB;
    std::vector<core::RevokedRange> revoked;
    sweep(
        [&]() -> Result<> {
            auto r = g().punchHole(trusted(), gpa, size);
            if (!r) return std::unexpected(r.error());
            revoked = *r;
            return {};
        },
        {{gpa, size}});
    EXPECT_EQ(revoked, (std::vector<core::RevokedRange>{{gpa, size}}));
    EXPECT_EQ(guest.rig.sim.counter("gmem_violations"), 0U);
}

INSTANTIATE_TEST_SUITE_P(Sweeps, ConversionFailNthTest,
                         ::testing::Values(Sweep{"tdx", "ENOMEM"}, Sweep{"snp", "EBUSY"}, Sweep{"cca", "EIO"}),
                         [](const auto& p) { return std::string(p.param.platform) + "_" + p.param.errno_name; });

}  // namespace
}  // namespace tio::test
