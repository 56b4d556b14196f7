#include "core/policy.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace tio::core {
namespace {

TEST(Policy, TheContractsExampleParses) {
    std::ifstream in(TIO_SOURCE_DIR "/policy/example-policy.json");
    std::stringstream text;
    text << in.rdbuf();
    auto p = Policy::parse(text.str());
    ASSERT_TRUE(p) << p.error().message;
    const GuestPolicy* vm1 = p->guest("vm1");
    ASSERT_NE(vm1, nullptr);
    EXPECT_TRUE(vm1->owners.admits(1000, {}));
    EXPECT_FALSE(vm1->owners.admits(1001, {}));
    EXPECT_TRUE(p->admins.admits(0, {}));
    EXPECT_EQ(vm1->max_devices, 8U);
    EXPECT_EQ(vm1->max_memory_regions, 64U);
    EXPECT_TRUE(p->allowsDevice("vm1", *Bdf::parse("0000:3a:00.0")));
    EXPECT_FALSE(p->allowsDevice("vm1", *Bdf::parse("0000:3a:00.1"))) << "exact entry";
    EXPECT_TRUE(p->allowsDevice("vm1", *Bdf::parse("0000:3b:00.5"))) << "function wildcard";
    EXPECT_FALSE(p->allowsDevice("vm1", *Bdf::parse("0000:3b:01.0")));
    EXPECT_FALSE(p->allowsDevice("vm2", *Bdf::parse("0000:3a:00.0"))) << "unknown guest";
}

TEST(Policy, GroupsAdmitTheirMembers) {
    auto p = Policy::parse(R"({"version": 1, "admins": {"groups": ["root", "no-such-group-here"]}})");
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_TRUE(p->admins.admits(4242, {0})) << "member of group root (gid 0)";
    EXPECT_FALSE(p->admins.admits(4242, {4242}));
}

// Every invalid policy is refused with a message naming the field.
TEST(Policy, InvalidFilesAreRefusedNamingTheField) {
    const std::pair<const char*, const char*> cases[] = {
        {"", "not valid JSON"},
        {"[]", "policy: must be an object"},
        {R"({"guests": {}})", "policy.version"},
        {R"({"version": 2})", "policy.version"},
        {R"({"version": 1, "extra": 1})", "policy.extra: unknown key"},
        {R"({"version": 1, "admins": {"uids": [-1]}})", "policy.admins.uids"},
        {R"({"version": 1, "admins": {"uids": "0"}})", "policy.admins.uids"},
        {R"({"version": 1, "admins": {"groups": [0]}})", "policy.admins.groups"},
        {R"({"version": 1, "guests": {"VM1": {}}})", "policy.guests.VM1: invalid guest name"},
        {R"({"version": 1, "guests": {"1vm": {}}})", "policy.guests.1vm: invalid guest name"},
        {R"({"version": 1, "guests": {"vm1": {"owner": {}}}})", "policy.guests.vm1.owner: unknown key"},
        {R"({"version": 1, "guests": {"vm1": {"devices": ["0000:3a:00"]}}})", "policy.guests.vm1.devices"},
        {R"({"version": 1, "guests": {"vm1": {"devices": ["../../sys"]}}})", "policy.guests.vm1.devices"},
        {R"({"version": 1, "guests": {"vm1": {"devices": ["0000:3a:*.*"]}}})", "policy.guests.vm1.devices"},
        {R"({"version": 1, "guests": {"vm1": {"devices": "0000:3a:00.0"}}})", "policy.guests.vm1.devices"},
        {R"({"version": 1, "guests": {"vm1": {"limits": {"devices": -1}}}})", "policy.guests.vm1.limits.devices"},
        {R"({"version": 1, "guests": {"vm1": {"limits": {"devices": 100000}}}})", "policy.guests.vm1.limits.devices"},
        {R"({"version": 1, "guests": {"vm1": {"limits": {"cpus": 1}}}})", "policy.guests.vm1.limits.cpus: unknown key"},
    };
    for (const auto& [text, field] : cases) {
        auto p = Policy::parse(text);
        ASSERT_FALSE(p) << text;
        EXPECT_EQ(p.error().code, Code::InvalidArgument);
        EXPECT_NE(p.error().message.find(field), std::string::npos) << text << " -> " << p.error().message;
    }
}

TEST(Policy, GuestNameGrammar) {
    for (const char* good : {"a", "vm1", "guest_2", "abcdefghijklmnopqrstuvwxyz012345"}) EXPECT_TRUE(validGuestName(good));
    for (const char* bad : {"", "1vm", "_vm", "Vm", "vm-1", "vm.1", "abcdefghijklmnopqrstuvwxyz0123456", "vm/1"}) {
        EXPECT_FALSE(validGuestName(bad)) << bad;
    }
}

TEST(Policy, MissingFileIsNotFound) {
    auto p = Policy::load("/nonexistent/policy.json");
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code, Code::NotFound);
}

}  // namespace
}  // namespace tio::core
