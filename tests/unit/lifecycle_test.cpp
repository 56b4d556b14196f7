#include "core/lifecycle.hpp"

#include <gtest/gtest.h>

#include <set>

namespace tio::core {
namespace {

constexpr TdiState kAllTdi[] = {TdiState::Unlocked, TdiState::Locked, TdiState::Run, TdiState::Error};

TEST(TdiTable, AllowsExactlyTheTdispTransitions) {
    const std::set<std::pair<TdiState, TdiState>> allowed = {
        {TdiState::Unlocked, TdiState::Locked}, {TdiState::Locked, TdiState::Run},
        {TdiState::Locked, TdiState::Error},    {TdiState::Run, TdiState::Error},
        {TdiState::Locked, TdiState::Unlocked}, {TdiState::Run, TdiState::Unlocked},
        {TdiState::Error, TdiState::Unlocked}};
    for (auto from : kAllTdi) {
        for (auto to : kAllTdi) {
            EXPECT_EQ(permitted(kTdiTransitions, from, to), allowed.contains({from, to}))
                << toString(from) << " -> " << toString(to);
        }
    }
}

TEST(TdiTable, RefusalNamesTheMissingStep) {
    TdiState s = TdiState::Unlocked;
    auto r = transition(kTdiTransitions, s, TdiState::Run);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Code::InvalidState);
    EXPECT_NE(r.error().message.find("Bind first"), std::string::npos) << r.error().message;
    EXPECT_EQ(s, TdiState::Unlocked) << "a refused transition changes nothing";

    s = TdiState::Run;
    r = transition(kTdiTransitions, s, TdiState::Locked);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("Unbind first"), std::string::npos);
    ASSERT_TRUE(transition(kTdiTransitions, s, TdiState::Unlocked));
    EXPECT_EQ(s, TdiState::Unlocked);
}

TEST(GuestTable, OneVmPerGuestAndTeardownReturnsToEmpty) {
    GuestState s = GuestState::Empty;
    ASSERT_TRUE(transition(kGuestTransitions, s, GuestState::Active));
    auto again = transition(kGuestTransitions, s, GuestState::Active);
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().code, Code::InvalidState);
    ASSERT_TRUE(transition(kGuestTransitions, s, GuestState::TearingDown));
    ASSERT_TRUE(transition(kGuestTransitions, s, GuestState::Empty));
}

TEST(Strings, RoundTrip) {
    EXPECT_EQ(parseMemoryState("private"), MemoryState::Private);
    EXPECT_EQ(parseMemoryState("shared"), MemoryState::Shared);
    EXPECT_FALSE(parseMemoryState("Private"));
    EXPECT_FALSE(parseMemoryState(""));
    for (auto s : {MemoryState::Private, MemoryState::Shared}) EXPECT_EQ(parseMemoryState(toString(s)), s);
    EXPECT_EQ(toString(GuestState::TearingDown), "tearing-down");
    for (auto s : {GuestState::Empty, GuestState::Active, GuestState::TearingDown}) {
        EXPECT_EQ(parseGuestState(toString(s)), s);
    }
    for (auto s : {DeviceState::Opened, DeviceState::Attached}) EXPECT_EQ(parseDeviceState(toString(s)), s);
    for (auto s : kAllTdi) EXPECT_EQ(parseTdiState(toString(s)), s);
    EXPECT_FALSE(parseTdiState("unsupported")) << "TDISP capability is not a TDI state";
}

TEST(DeviceTable, AttachesOnceFromOpened) {
    DeviceState s = DeviceState::Opened;
    ASSERT_TRUE(transition(kDeviceTransitions, s, DeviceState::Attached));
    auto again = transition(kDeviceTransitions, s, DeviceState::Attached);
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().code, Code::InvalidState);
    EXPECT_NE(again.error().message.find("already attached"), std::string::npos) << again.error().message;
}

TEST(Force, SaysWhatItOverrodeAndNothingWhenUnchanged) {
    TdiState s = TdiState::Unlocked;
    EXPECT_FALSE(permitted(kTdiTransitions, s, TdiState::Run));
    EXPECT_EQ(force(s, TdiState::Run, "as the device reports it"), "unlocked -> run: as the device reports it");
    EXPECT_EQ(s, TdiState::Run);
    EXPECT_EQ(force(s, TdiState::Run, "again"), "");
}

}  // namespace
}  // namespace tio::core
