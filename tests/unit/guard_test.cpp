// The guard decides what the policy file decides, the same for every door: who may
// call, which functions a guest may claim, its quotas and conversion rate, and what a
// reloaded policy no longer allows.
#include "core/guard.hpp"

#include <gtest/gtest.h>

namespace tio::core {
namespace {

Policy parsed(const char* json) {
    auto p = Policy::parse(json);
    EXPECT_TRUE(p) << p.error().message;
    return *p;
}

constexpr const char* kPolicy = R"({"version": 1, "admins": {"uids": [900]},
    "guests": {"vm1": {"owners": {"uids": [1000]}, "devices": ["0000:3b:00.*", "0000:3c:00.0"],
                       "limits": {"devices": 2, "memory_regions": 1, "conversions_per_second": 3}}}})";

Caller caller(uid_t uid, Door door) { return Caller{.uid = uid, .pid = 1, .groups = {}, .door = door}; }

TEST(Guard, WhoMayCallOnWhichDoor) {
    const Guard g("vm1", parsed(kPolicy));
    for (Door door : {Door::Vmm, Door::Admin}) {
        for (Access a : {Access::Read, Access::Mutate}) {
            EXPECT_TRUE(g.admits(caller(0, door), a)) << "root";
            EXPECT_TRUE(g.admits(caller(900, door), a)) << "a policy admin";
        }
    }
    EXPECT_TRUE(g.admits(caller(1000, Door::Vmm), Access::Mutate)) << "the owner drives it on the VMM door";
    EXPECT_FALSE(g.admits(caller(1001, Door::Vmm), Access::Read)) << "a stranger gets nothing on the VMM door";
    EXPECT_TRUE(g.admits(caller(1001, Door::Admin), Access::Read)) << "the admin door reads for whom the bus admits";
    EXPECT_FALSE(g.admits(caller(1001, Door::Admin), Access::Mutate));
    EXPECT_FALSE(g.admits(caller(1000, Door::Admin), Access::Mutate)) << "an owner mutates through its own door";
    const Guard other("vm2", parsed(kPolicy));
    EXPECT_FALSE(other.admits(caller(1000, Door::Vmm), Access::Read)) << "vm1's owner is not vm2's";
}

TEST(Guard, AllowlistThenDeviceQuota) {
    const Guard g("vm1", parsed(kPolicy));
    EXPECT_TRUE(g.admitDevice(*Bdf::parse("0000:3b:00.3"), 0));
    EXPECT_TRUE(g.admitDevice(*Bdf::parse("0000:3c:00.0"), 1));
    auto denied = g.admitDevice(*Bdf::parse("0000:3c:00.1"), 0);
    ASSERT_FALSE(denied);
    EXPECT_EQ(denied.error().code, Code::AccessDenied);
    EXPECT_NE(denied.error().message.find("0000:3c:00.1"), std::string::npos);
    auto full = g.admitDevice(*Bdf::parse("0000:3b:00.0"), 2);
    ASSERT_FALSE(full);
    EXPECT_EQ(full.error().code, Code::LimitExceeded);
    EXPECT_EQ(full.error().message, "the policy allows 2 devices");
    EXPECT_TRUE(g.admitMemoryRegion(0));
    EXPECT_EQ(g.admitMemoryRegion(1).error().code, Code::LimitExceeded);
    const Guard unknown("vm9", parsed(kPolicy));
    EXPECT_EQ(unknown.admitDevice(*Bdf::parse("0000:3b:00.0"), 0).error().code, Code::AccessDenied)
        << "a guest the policy does not name claims nothing";
}

TEST(Guard, ConversionRatePerSecondSpendsOnlyWhatItAdmits) {
    std::uint64_t now = 100;
    Guard g("vm1", parsed(kPolicy), [&] { return now; });
    EXPECT_TRUE(g.takeConversions(2));
    auto over = g.takeConversions(2);
    ASSERT_FALSE(over);
    EXPECT_EQ(over.error().code, Code::LimitExceeded);
    EXPECT_TRUE(g.takeConversions(1)) << "the refused call spent nothing";
    EXPECT_FALSE(g.takeConversions(1)) << "three per second";
    now = 101;
    EXPECT_TRUE(g.takeConversions(3)) << "a new second, a new budget";
    Guard unlimited("vm1", Policy::development("vm1", 1000), [&] { return now; });
    EXPECT_TRUE(unlimited.takeConversions(1U << 16U)) << "0 is no limit";
}

TEST(Guard, AReloadedPolicyReportsWhatItNoLongerAllows) {
    Guard g("vm1", parsed(kPolicy));
    const std::vector<std::pair<ObjectId, Bdf>> held = {{1, *Bdf::parse("0000:3b:00.0")},
                                                        {2, *Bdf::parse("0000:3c:00.0")}};
    auto findings = g.replacePolicy(parsed(R"({"version": 1, "guests": {"vm1": {"owners": {"uids": [1000]},
        "devices": ["0000:3b:00.*"], "limits": {"devices": 1}}}})"),
                                    held, 1);
    ASSERT_EQ(findings.size(), 2U);
    EXPECT_EQ(findings[0].device, 2U);
    EXPECT_NE(findings[0].detail.find("0000:3c:00.0 is no longer allowed"), std::string::npos);
    EXPECT_EQ(findings[1].device, 0U) << "over the new device limit: the guest's finding";
    EXPECT_EQ(g.admitDevice(*Bdf::parse("0000:3c:00.0"), 0).error().code, Code::AccessDenied)
        << "the new policy applies to the calls that follow";

    auto gone = g.replacePolicy(parsed(R"({"version": 1, "guests": {}})"), held, 0);
    ASSERT_EQ(gone.size(), 1U);
    EXPECT_EQ(gone[0].device, 0U);
    EXPECT_NE(gone[0].detail.find("no longer in the policy"), std::string::npos);
}

}  // namespace
}  // namespace tio::core
