// PageSet against a plain map of runs (RangeMap, the oracle), and its memory bound:
// never more than a bitmap of what it covers plus 1%.
#include "common/page_set.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <random>

#include "common/range_map.hpp"
#include "core/page_states.hpp"

namespace tio {
namespace {

constexpr std::uint64_t kChunk = PageSet::kChunkPages;

std::vector<std::pair<std::uint64_t, std::uint64_t>> oracleMembers(const RangeMap<bool>& m) {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
    for (const auto& r : m.all()) out.emplace_back(r.start, r.end);
    return out;
}

// Every query the set answers, at `p`, against the oracle.
void expectSameAt(const PageSet& set, const RangeMap<bool>& oracle, std::uint64_t p, std::uint64_t limit) {
    const bool member = oracle.find(p).has_value();
    ASSERT_EQ(set.contains(p), member) << "page " << p;
    const std::uint64_t end = std::min(limit, member ? oracle.find(p)->end : oracle.pieceEnd(p));
    EXPECT_EQ(set.runEnd(p, limit), end) << "page " << p;
    const std::uint64_t start = member ? oracle.find(p)->start : oracle.pieceStart(p);
    EXPECT_EQ(set.runStart(p, 0), start) << "page " << p;
    const PageSet::Edge edge = set.edgeAt(p, limit);
    EXPECT_EQ(edge.before, p > 0 && oracle.find(p - 1).has_value()) << "page " << p;
    EXPECT_EQ(edge.stretch.member, member) << "page " << p;
    EXPECT_EQ(edge.stretch.end, end) << "page " << p;
}

// Random ranges of every scale: within a word, across words, across chunks and over
// many chunks, so runs, bitmaps, full spans and their transitions all occur.
void randomWalk(std::uint64_t seed, std::uint64_t pages, int steps, std::uint64_t small_bias) {
    std::mt19937_64 rng(seed);
    PageSet set;
    RangeMap<bool> oracle;
    for (int i = 0; i < steps; ++i) {
        const std::uint64_t s = rng() % pages;
        const std::uint64_t scale = (rng() % 4 == 0) ? pages : ((rng() % 2 == 0) ? small_bias : 3 * kChunk / 2);
        const std::uint64_t e = std::min(pages, s + 1 + rng() % scale);
        const bool member = (rng() & 1U) != 0;
        set.assign(s, e, member);
        if (member) {
            oracle.assign(s, e, true);
        } else {
            oracle.erase(s, e);
        }
        if (i % 64 == 0) {
            ASSERT_EQ(set.members(), oracleMembers(oracle)) << "after step " << i;
        }
        for (int q = 0; q < 4; ++q) expectSameAt(set, oracle, rng() % pages, pages);
        expectSameAt(set, oracle, s, pages);
        if (e < pages) expectSameAt(set, oracle, e, pages);
        expectSameAt(set, oracle, (s / kChunk) * kChunk, pages);  // a chunk's first page: page - 1 is in another
    }
    EXPECT_EQ(set.members(), oracleMembers(oracle));
}

TEST(PageSetTest, AgreesWithAMapOfRunsAtEveryScale) {
    randomWalk(1, 6 * kChunk, 3000, 200);
    randomWalk(2, 3 * kChunk, 3000, 4);
}

TEST(PageSetTest, AgreesWhileChunksTurnIntoBitmapsAndBack) {
    // Single pages in one chunk: thousands of runs force the bitmap, then big clears
    // bring the runs down again.
    std::mt19937_64 rng(3);
    PageSet set;
    RangeMap<bool> oracle;
    bool saw_bitmap = false;
    for (int round = 0; round < 3; ++round) {
        for (int i = 0; i < 6000; ++i) {
            const std::uint64_t p = kChunk + rng() % kChunk;
            set.assign(p, p + 1, true);
            oracle.assign(p, p + 1, true);
        }
        saw_bitmap = saw_bitmap || set.bitmapChunks() == 1;
        for (int q = 0; q < 200; ++q) expectSameAt(set, oracle, rng() % (3 * kChunk), 3 * kChunk);
        const std::uint64_t s = kChunk + rng() % (kChunk / 2);
        set.assign(s, s + kChunk / 2 + 7, false);
        oracle.erase(s, s + kChunk / 2 + 7);
        ASSERT_EQ(set.members(), oracleMembers(oracle));
    }
    EXPECT_TRUE(saw_bitmap);
    // Down to a few hundred runs: the chunk is runs again, and still agrees.
    set.assign(kChunk, kChunk + kChunk * 15 / 16, false);
    oracle.erase(kChunk, kChunk + kChunk * 15 / 16);
    EXPECT_EQ(set.bitmapChunks(), 0U);
    ASSERT_EQ(set.members(), oracleMembers(oracle));
    for (int q = 0; q < 200; ++q) expectSameAt(set, oracle, kChunk + rng() % kChunk, 3 * kChunk);
    set.assign(0, 3 * kChunk, false);
    EXPECT_TRUE(set.empty());
    EXPECT_EQ(set.heapBytes(), 0U);
}

TEST(PageSetTest, UniformMemoryCostsOneSlotAChunk) {
    PageSet set;
    const std::uint64_t tib_pages = (1ULL << 40U) / 4096;
    set.assign(0, tib_pages, true);
    const std::size_t uniform = set.heapBytes();
    EXPECT_EQ(uniform, 96U * 1024) << "48 bytes per 512 MiB chunk (its slot): 0.3% of the bitmap";
    // One page out in the middle: one chunk of two runs.
    set.assign(tib_pages / 2, tib_pages / 2 + 1, false);
    EXPECT_LT(set.heapBytes(), uniform + 128);
    EXPECT_EQ(set.runEnd(0, tib_pages), tib_pages / 2);
    EXPECT_EQ(set.runStart(tib_pages - 1, 0), tib_pages / 2 + 1);
    set.assign(tib_pages / 2, tib_pages / 2 + 1, true);
    EXPECT_EQ(set.heapBytes(), uniform);
    EXPECT_EQ(set.members().size(), 1U);
}

// The worst patterns for memory: every other page, and the run count just below the
// switch to a bitmap, over several chunks; neither may pass the bitmap plus 1%.
TEST(PageSetTest, NeverMoreThanABitmapPlusOnePercent) {
    const std::uint64_t chunks = 4;
    const double bitmap = static_cast<double>(chunks * kChunk / 8);
    for (const std::uint64_t stride : {2ULL, 64ULL, 128ULL, 130ULL, 256ULL}) {
        PageSet set;
        for (std::uint64_t p = 0; p < chunks * kChunk; p += stride) set.assign(p, p + 1, true);
        EXPECT_LE(static_cast<double>(set.heapBytes()), bitmap * 1.01) << "stride " << stride;
    }
}

TEST(PageStatesTest, RunsAreTheMaximalStretchesOfBothSets) {
    using core::MemoryState;
    using core::PageState;
    constexpr std::uint64_t kBase = 1ULL << 32U;
    constexpr std::uint64_t kPage = 4096;
    core::PageStates states(kBase, 64 * kPage, PageState{MemoryState::Private, false});
    states.assign(kBase + 8 * kPage, kBase + 16 * kPage, PageState{MemoryState::Shared, false});
    states.assign(kBase + 12 * kPage, kBase + 20 * kPage, PageState{MemoryState::Shared, true});
    const std::vector<core::PageStates::Run> expected{
        {kBase, kBase + 8 * kPage, {MemoryState::Private, false}},
        {kBase + 8 * kPage, kBase + 12 * kPage, {MemoryState::Shared, false}},
        {kBase + 12 * kPage, kBase + 20 * kPage, {MemoryState::Shared, true}},
        {kBase + 20 * kPage, kBase + 64 * kPage, {MemoryState::Private, false}},
    };
    EXPECT_EQ(states.all(), expected);
    EXPECT_EQ(states.find(kBase + 13 * kPage), expected[2]);
    EXPECT_EQ(states.find(kBase + 63 * kPage), expected[3]);
    EXPECT_EQ(states.runs(kBase + 10 * kPage, kBase + 14 * kPage).size(), 2U);
    EXPECT_TRUE(states.holds(kBase, kBase + kPage));
    EXPECT_FALSE(states.holds(kBase, kBase + 65 * kPage));
    EXPECT_FALSE(states.holds(kBase + 1, kBase + kPage));
    EXPECT_FALSE(states.holds(kBase + kPage, kBase + kPage));
}

// forEachWithNeighbours against page-by-page lookups, with changes and queries
// crowded at the region's edges and at a chunk boundary, where the neighbour lies in
// another chunk or outside the region.
TEST(PageStatesTest, NeighboursAreThePagesJustOutsideTheRange) {
    using core::MemoryState;
    using core::PageState;
    constexpr std::uint64_t kBase = 1ULL << 32U;
    constexpr std::uint64_t kPage = 4096;
    constexpr std::uint64_t kPages = 2 * kChunk;
    core::PageStates states(kBase, kPages * kPage, PageState{MemoryState::Private, false});
    std::mt19937_64 rng(4);
    const std::uint64_t spots[] = {0, kChunk - 40, kChunk, kPages - 80};
    auto page = [&] { return spots[rng() % 4] + rng() % 80; };
    auto randomState = [&] {
        return PageState{(rng() & 1U) != 0 ? MemoryState::Private : MemoryState::Shared, rng() % 4 == 0};
    };
    for (int i = 0; i < 400; ++i) {
        const std::uint64_t s = page();
        const std::uint64_t e = std::min(kPages, s + 1 + rng() % 12);
        states.assign(kBase + s * kPage, kBase + e * kPage, randomState());
    }
    for (int i = 0; i < 2000; ++i) {
        const std::uint64_t s = page();
        const std::uint64_t e = std::min(kPages, s + 1 + rng() % 40);
        std::uint64_t covered = s;
        std::optional<PageState> previous;
        const auto around = states.forEachWithNeighbours(
            kBase + s * kPage, kBase + e * kPage, [&](std::uint64_t rs, std::uint64_t re, PageState v) {
                ASSERT_EQ(rs, kBase + covered * kPage) << "runs follow each other";
                ASSERT_LT(rs, re);
                EXPECT_NE(previous, v) << "runs are maximal";
                for (std::uint64_t g = rs; g < re; g += kPage) ASSERT_EQ(states.at(g), v) << "page " << g;
                covered = (re - kBase) / kPage;
                previous = v;
            });
        EXPECT_EQ(covered, e);
        const std::optional<PageState> left = s > 0 ? std::optional(states.at(kBase + (s - 1) * kPage)) : std::nullopt;
        const std::optional<PageState> right = e < kPages ? std::optional(states.at(kBase + e * kPage)) : std::nullopt;
        EXPECT_EQ(around.left, left) << "[" << s << ", " << e << ")";
        EXPECT_EQ(around.right, right) << "[" << s << ", " << e << ")";
    }
}

}  // namespace
}  // namespace tio
