// The audit's rate limit: a burst per key and window, the rest counted and reported
// once with the next record let through; keys do not share windows.
#include "audit/rate_limiter.hpp"

#include <gtest/gtest.h>

namespace tio::audit {
namespace {

TEST(RateLimiter, ABurstPerWindowThenOneReportOfWhatWasSuppressed) {
    auto now = std::chrono::steady_clock::time_point{};
    RateLimiter limit(std::chrono::seconds(10), 3, [&] { return now; });
    for (int i = 0; i < 3; ++i) {
        const auto v = limit.admit(7);
        EXPECT_TRUE(v.write);
        EXPECT_EQ(v.suppressed, 0U);
    }
    for (int i = 0; i < 5; ++i) EXPECT_FALSE(limit.admit(7).write);
    EXPECT_TRUE(limit.admit(8).write) << "another key has its own window";
    now += std::chrono::seconds(9);
    EXPECT_FALSE(limit.admit(7).write) << "still the same window";
    now += std::chrono::seconds(1);
    const auto next = limit.admit(7);
    EXPECT_TRUE(next.write);
    EXPECT_EQ(next.suppressed, 6U) << "reported once";
    EXPECT_EQ(limit.admit(7).suppressed, 0U);
}

TEST(RateLimiter, ManyKeysDoNotGrowWithoutBound) {
    auto now = std::chrono::steady_clock::time_point{};
    RateLimiter limit(std::chrono::seconds(1), 1, [&] { return now; });
    for (std::uint64_t key = 0; key < 100000; ++key) {
        if (key % 1000 == 0) now += std::chrono::seconds(2);
        EXPECT_TRUE(limit.admit(key).write);
    }
    // Pruned lazily: a key whose window ended and owes nothing starts afresh.
    now += std::chrono::seconds(2);
    EXPECT_TRUE(limit.admit(5).write);
}

}  // namespace
}  // namespace tio::audit
