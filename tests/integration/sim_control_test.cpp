// The simulator's control door: the contract's methods, counters and error names.
#include <gtest/gtest.h>
#include <sdbus-c++/sdbus-c++.h>

#include "support/sim_process.hpp"

namespace tio::test {
namespace {

TEST(SimControl, CountersCarryTheContractKeys) {
    SimProcess sim("snp");
    const auto c = sim.counters();
    for (const char* key : {"iopte_map", "iopte_unmap", "iopte_split", "iopte_merge", "iotlb_flush", "iommu_faults",
                            "machine_checks", "open_files", "objects"}) {
        ASSERT_TRUE(c.contains(key)) << key;
        EXPECT_EQ(c.at(key), 0U) << key;
    }
}

TEST(SimControl, BadArgumentsAreNamedErrors) {
    SimProcess sim("cca");
    try {
        (void)sim.dma("0000:3a:00.x", 0, 4096, false);
        FAIL() << "malformed BDF accepted";
    } catch (const sdbus::Error& e) {
        EXPECT_EQ(e.getName(), "org.tio.Error.InvalidArgument");
    }
    try {
        sim.configWrite("0000:77:00.0");
        FAIL() << "unknown BDF accepted";
    } catch (const sdbus::Error& e) {
        EXPECT_EQ(e.getName(), "org.tio.Error.NotFound");
    }
    for (auto [op, nth, err] : {std::tuple{"IOMMU_NO_SUCH", 1U, "ENOMEM"}, std::tuple{"*", 0U, "ENOMEM"},
                                std::tuple{"OPEN", 1U, "EWHATEVER"}}) {
        try {
            sim.injectFailure(op, nth, err);
            FAIL() << op << " accepted";
        } catch (const sdbus::Error& e) {
            EXPECT_EQ(e.getName(), "org.tio.Error.InvalidArgument");
        }
    }
    EXPECT_EQ(sim.counter("failures_pending"), 0U);
}

TEST(SimControl, DevicesFromTheCommandLine) {
    SimProcess sim("tdx", {"0000:5e:00.0,notdisp", "0000:5f:00.1"});
    EXPECT_EQ(sim.tdiState("0000:5e:00.0"), "unsupported");
    EXPECT_EQ(sim.tdiState("0000:5f:00.1"), "unlocked");
    EXPECT_THROW((void)sim.tdiState("0000:3a:00.0"), sdbus::Error) << "defaults replaced";
}

}  // namespace
}  // namespace tio::test
