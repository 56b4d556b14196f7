// RangeMap against a per-page reference model, with random assigns and erases.
#include "common/range_map.hpp"

#include <gtest/gtest.h>

#include <random>

namespace tio {
namespace {

TEST(RangeMapTest, AssignSplitsAndCoalesces) {
    RangeMap<int> m;
    m.assign(0, 100, 1);
    m.assign(40, 60, 2);
    EXPECT_EQ(m.fragments(), 3U);
    EXPECT_EQ(m.find(50)->start, 40U);
    EXPECT_EQ(m.find(50)->end, 60U);
    m.assign(40, 60, 1);
    EXPECT_EQ(m.fragments(), 1U) << "equal neighbours coalesce";
    EXPECT_EQ(m.find(99)->end, 100U);
    EXPECT_FALSE(m.find(100));
    m.erase(10, 20);
    EXPECT_EQ(m.fragments(), 2U);
    EXPECT_FALSE(m.intersects(10, 20));
    EXPECT_TRUE(m.intersects(19, 21));
    EXPECT_TRUE(m.covers(20, 100, 1));
    EXPECT_FALSE(m.covers(5, 25, 1));
    const auto runs = m.runs(5, 25);
    ASSERT_EQ(runs.size(), 2U);
    EXPECT_EQ(runs[0], (RangeMap<int>::Run{5, 10, 1}));
    EXPECT_EQ(runs[1], (RangeMap<int>::Run{20, 25, 1}));
}

TEST(RangeMapTest, PiecesAlternateBetweenRunsAndGaps) {
    RangeMap<int> m;
    m.assign(10, 20, 1);
    m.assign(30, 40, 2);
    EXPECT_EQ(m.pieceStart(5), 0U);
    EXPECT_EQ(m.pieceEnd(5), 10U);
    EXPECT_EQ(m.pieceStart(15), 10U);
    EXPECT_EQ(m.pieceEnd(15), 20U);
    EXPECT_EQ(m.pieceStart(25), 20U);
    EXPECT_EQ(m.pieceEnd(25), 30U);
    EXPECT_EQ(m.pieceStart(45), 40U);
    EXPECT_EQ(m.pieceEnd(45), UINT64_MAX);
}

TEST(RangeMapTest, MatchesAPerUnitModel) {
    constexpr std::uint64_t kUnits = 512;
    std::vector<int> model(kUnits, 0);  // 0 = absent
    RangeMap<int> m;
    std::mt19937_64 rng(42);
    for (int step = 0; step < 20000; ++step) {
        const std::uint64_t s = rng() % kUnits;
        const std::uint64_t e = s + 1 + rng() % (kUnits - s);
        const int v = static_cast<int>(rng() % 4);
        if (v == 0) m.erase(s, e);
        else m.assign(s, e, v);
        std::fill(model.begin() + static_cast<std::ptrdiff_t>(s), model.begin() + static_cast<std::ptrdiff_t>(e), v);
        // Coalesced: neighbours never equal, and every unit agrees with the model.
        const auto all = m.all();
        for (std::size_t i = 1; i < all.size(); ++i) {
            ASSERT_FALSE(all[i - 1].end == all[i].start && all[i - 1].value == all[i].value) << "step " << step;
        }
        for (std::uint64_t u = 0; u < kUnits; ++u) {
            const auto run = m.find(u);
            ASSERT_EQ(run ? run->value : 0, model[u]) << "step " << step << " unit " << u;
        }
    }
}

}  // namespace
}  // namespace tio
