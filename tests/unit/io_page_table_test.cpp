// The simulated page table's leaf arithmetic against a brute-force greedy walk.
#include "simkernel/io_page_table.hpp"

#include <gtest/gtest.h>

#include <random>

namespace tio::sim {
namespace {

// What iommu_map() does, one leaf at a time.
LeafCounts bruteForce(std::uint64_t s, std::uint64_t e, unsigned max_shift) {
    LeafCounts c;
    for (std::uint64_t v = s; v < e;) {
        for (unsigned sh : {kShift1G, kShift2M, kShift4K}) {
            const std::uint64_t size = 1ULL << sh;
            if (sh <= max_shift && v % size == 0 && v + size <= e) {
                ++c.n[sh == kShift4K ? 0 : sh == kShift2M ? 1 : 2];
                const auto [base, shift] = leafOf(s, e, max_shift, v);
                EXPECT_EQ(base, v);
                EXPECT_EQ(shift, sh);
                v += size;
                break;
            }
        }
    }
    return c;
}

TEST(IoPageTableTest, DecomposeIsTheGreedyWalk) {
    std::mt19937_64 rng(1);
    for (int i = 0; i < 300; ++i) {
        const std::uint64_t s = (rng() % (1ULL << 20U)) * 4096;
        const std::uint64_t e = s + (1 + rng() % (1ULL << 19U)) * 4096;
        for (unsigned max : {kShift4K, kShift2M, kShift1G}) {
            ASSERT_EQ(decompose(s, e, max), bruteForce(s, e, max)) << std::hex << s << "-" << e << " max " << max;
        }
    }
}

TEST(IoPageTableTest, CuttingAHugeEntryIsTwoSplitsAndChangesNoTranslation) {
    IoPageTable t;
    const IoPageTable::Segments whole = {{0, Segment{.end = 1ULL << 30U, .file = 1, .writeable = true}}};
    auto mapped = t.replace(0, 1ULL << 30U, whole, false);
    EXPECT_EQ(mapped.added.total(), 1U);
    const IoPageTable::Segments cut = {{0, Segment{.end = 4096, .file = 1, .writeable = true}},
                                       {4096, Segment{.end = 1ULL << 30U, .file = 1, .writeable = true}}};
    auto ch = t.replace(0, 1ULL << 30U, cut, true);
    EXPECT_EQ(ch.splits, 2U) << "1 GiB -> 2 MiB table, first 2 MiB -> 4 KiB table";
    EXPECT_EQ(ch.merges, 0U);
    EXPECT_EQ(ch.pages_unmapped + ch.pages_mapped + ch.retargeted_pages, 0U);
    EXPECT_EQ(t.counts().n, (std::array<std::uint64_t, 3>{512, 511, 0}));
    EXPECT_EQ(t.leafAt(4096)->shift, kShift4K);
    EXPECT_EQ(t.leafAt(3ULL << 20U)->shift, kShift2M);
    auto back = t.replace(0, 1ULL << 30U, whole, true);
    EXPECT_EQ(back.merges, 2U);
    EXPECT_EQ(usableShift(3ULL << 21U, kShift1G), kShift2M) << "file offset only 2 MiB aligned";
}

}  // namespace
}  // namespace tio::sim
