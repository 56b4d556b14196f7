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
