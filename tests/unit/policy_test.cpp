#include "core/policy.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/bus_names.hpp"

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
    EXPECT_EQ(vm1->max_conversions_per_second, 100000U);
    EXPECT_EQ(vm1->platform, "tdx");
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
    for (const char* good : {"a", "vm1", "guest_2", "abcdefghijklmnopqrstuvwxyz012345"})
        EXPECT_TRUE(validGuestName(good));
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

namespace tio::core {
namespace {

std::string readFile(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// tests/data/policy/invalid/FIELD@WHY.json: each is refused, and the message names
// policy.FIELD (the file name says which field is wrong).
TEST(Policy, EveryInvalidExampleFileIsRefusedNamingItsField) {
    std::size_t files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(TIO_SOURCE_DIR "/tests/data/policy/invalid")) {
        const std::string stem = entry.path().stem().string();
        const std::string field = stem.substr(0, stem.find('@'));
        const std::string expected = field == "policy" ? "policy" : "policy." + field;
        auto p = Policy::load(entry.path().string());
        ASSERT_FALSE(p) << entry.path();
        EXPECT_EQ(p.error().code, Code::InvalidArgument) << entry.path();
        EXPECT_NE(p.error().message.find(expected), std::string::npos) << entry.path() << ": " << p.error().message;
        ++files;
    }
    EXPECT_GE(files, 15U);
}

// The published schema and the parser agree on the keys and the platform names.
TEST(Policy, TheSchemaNamesWhatTheParserAccepts) {
    const auto schema = nlohmann::json::parse(readFile(TIO_SOURCE_DIR "/policy/policy.schema.json"));
    const auto& defs = schema["$defs"];
    std::vector<std::string> top, guest, limits, principals;
    for (const auto& [k, v] : schema["properties"].items()) top.push_back(k);
    for (const auto& [k, v] : defs["guest"]["properties"].items()) guest.push_back(k);
    for (const auto& [k, v] : defs["guest"]["properties"]["limits"]["properties"].items()) limits.push_back(k);
    for (const auto& [k, v] : defs["principals"]["properties"].items()) principals.push_back(k);
    EXPECT_EQ(top, (std::vector<std::string>{"admins", "guests", "version"}));
    EXPECT_EQ(guest, (std::vector<std::string>{"devices", "limits", "owners", "platform"}));
    EXPECT_EQ(limits, (std::vector<std::string>{"conversions_per_second", "devices", "memory_regions"}));
    EXPECT_EQ(principals, (std::vector<std::string>{"groups", "uids"}));
    // A document using every key parses; each platform of the enum is accepted.
    for (const auto& platform : defs["guest"]["properties"]["platform"]["enum"]) {
        nlohmann::json doc = {
            {"version", 1},
            {"admins", {{"uids", {0}}, {"groups", {"root"}}}},
            {"guests",
             {{"vm1",
               {{"owners", {{"uids", {1000}}}},
                {"devices", {"0000:3a:00.*"}},
                {"platform", platform},
                {"limits", {{"devices", 1}, {"memory_regions", 2}, {"conversions_per_second", 3}}}}}}}};
        auto p = Policy::parse(doc.dump());
        EXPECT_TRUE(p) << doc.dump() << ": " << (p ? "" : p.error().message);
        EXPECT_TRUE(validPlatformName(platform.get<std::string>()));
    }
    EXPECT_FALSE(validPlatformName("sev"));
}

}  // namespace
}  // namespace tio::core
