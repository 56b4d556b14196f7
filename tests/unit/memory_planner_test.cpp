// The planner's step sequences per platform, spelled out for the cases that define
// the order (architecture.md section 6). The randomized integration test checks
// outcomes; this one pins the order itself.
#include "core/memory_planner.hpp"

#include <gtest/gtest.h>

namespace tio::core {
namespace {

constexpr std::uint64_t kPage = 4096;
constexpr std::uint64_t k2M = 2ULL << 20U;
constexpr std::uint64_t kBase = 1ULL << 32U;
constexpr std::uint64_t kEnd = kBase + (1ULL << 30U);
constexpr PageState kShared{MemoryState::Shared, false};
constexpr PageState kPrivate{MemoryState::Private, false};

std::vector<StepKind> kinds(const std::vector<Step>& plan) {
    std::vector<StepKind> out;
    for (const auto& s : plan) out.push_back(s.kind);
    return out;
}

PageStates uniform(PageState s) { return PageStates(kBase, kEnd - kBase, s); }

TEST(MemoryPlannerTest, TdxToPrivateUnmapsBeforeTheAttributeAndCutsTheNeighbours) {
    const auto plan = planChange({Platform::Tdx}, uniform(kShared),
                                 Change{kBase + 5 * kPage, kBase + 7 * kPage, MemoryState::Private, false});
    using enum StepKind;
    EXPECT_EQ(kinds(plan), (std::vector{Split, Split, Unmap, SetAttributes}));
    EXPECT_EQ(plan[0].start, kBase + 5 * kPage);
    EXPECT_EQ(plan[1].start, kBase + 7 * kPage);
    EXPECT_EQ(plan[2].iova_bit, kSharedAliasBit) << "TDX shared memory lives at its shared-bit alias";
    EXPECT_EQ(plan[2].end - plan[2].start, 2 * kPage);
}

TEST(MemoryPlannerTest, TdxToSharedSetsTheAttributeThenMapsThenJoins) {
    auto states = uniform(kShared);
    states.assign(kBase + 5 * kPage, kBase + 7 * kPage, kPrivate);
    const auto plan =
        planChange({Platform::Tdx}, states, Change{kBase + 5 * kPage, kBase + 7 * kPage, MemoryState::Shared, false});
    using enum StepKind;
    EXPECT_EQ(kinds(plan), (std::vector{SetAttributes, Map, Join, Join}));
}

TEST(MemoryPlannerTest, SnpSplitsToSmallPagesBeforeTheAttributeAndRestoresAfter) {
    const auto plan = planChange({Platform::Snp}, uniform(kShared),
                                 Change{kBase + k2M, kBase + 2 * k2M, MemoryState::Private, false});
    using enum StepKind;
    ASSERT_EQ(kinds(plan), (std::vector{Limit, SetAttributes, Limit})) << "never unmapped: hitless both ways";
    EXPECT_EQ(plan[0].max_pgsize, kPage);
    EXPECT_EQ(plan[2].max_pgsize, k2M) << "private memory: no IOPTE larger than a 2 MiB RMP entry";
    EXPECT_EQ(plan[0].iova_bit, 0U) << "SNP maps both kinds at the GPA";
}

TEST(MemoryPlannerTest, CcaLikeTdxButNothingToCutInsideAPrivateRange) {
    auto states = uniform(kPrivate);
    const auto plan = planChange({Platform::Cca}, states, Change{kBase, kBase + k2M, MemoryState::Shared, false});
    using enum StepKind;
    EXPECT_EQ(kinds(plan), (std::vector{SetAttributes, Map})) << "nothing mapped around it to join";
}

TEST(MemoryPlannerTest, NoChangeNoSteps) {
    EXPECT_TRUE(planChange({Platform::Tdx}, uniform(kShared), Change{kBase, kBase + kPage, MemoryState::Shared, false})
                    .empty());
    EXPECT_TRUE(
        planChange({Platform::Snp}, uniform(kPrivate), Change{kBase, kEnd, MemoryState::Private, false}).empty());
}

TEST(MemoryPlannerTest, RevokingCutsAtTheEdgesAndUnmapsBothKindsOnSnpInOneGo) {
    auto states = uniform(kShared);
    states.assign(kBase + 8 * kPage, kBase + 16 * kPage, kPrivate);
    const auto plan =
        planChange({Platform::Snp}, states, Change{kBase + 4 * kPage, kBase + 12 * kPage, std::nullopt, true});
    using enum StepKind;
    EXPECT_EQ(kinds(plan), (std::vector{Split, Split, Unmap}));
}

// What the kernel cannot map is never planned: without a mappable shared backing
// shared pages stay out of the IOMMU; without guest_memfd by file SNP's private
// pages do (and then no page-size limits are needed).
TEST(MemoryPlannerTest, WhatTheKernelCannotMapIsNeverPlanned) {
    using enum StepKind;
    const MappingRules no_shared{.platform = Platform::Tdx, .shared_dma = false, .private_dma = false};
    EXPECT_EQ(kinds(planChange(no_shared, uniform(kPrivate), Change{kBase, kBase + k2M, MemoryState::Shared, false})),
              (std::vector{SetAttributes}));
    const MappingRules snp_shared_only{.platform = Platform::Snp, .shared_dma = true, .private_dma = false};
    auto states = uniform(kShared);
    const auto plan = planChange(snp_shared_only, states, Change{kBase, kEnd, MemoryState::Private, false});
    EXPECT_EQ(kinds(plan), (std::vector{Unmap, SetAttributes})) << "private pages leave the IOMMU, no limits";
}

// Without hitless split and merge every area is one page: nothing is ever cut or
// joined, and no page-size limit is needed; maps and unmaps are of exactly the range.
TEST(MemoryPlannerTest, PageAreasNeverCutOrJoin) {
    using enum StepKind;
    auto states = uniform(kShared);
    states.assign(kBase + 8 * kPage, kBase + 16 * kPage, kPrivate);
    for (Platform p : {Platform::Tdx, Platform::Snp, Platform::Cca}) {
        const MappingRules rules{.platform = p, .shared_dma = true, .private_dma = false, .page_areas = true};
        const auto to_private =
            planChange(rules, states, Change{kBase + 4 * kPage, kBase + 6 * kPage, kPrivate.attr, false});
        EXPECT_EQ(kinds(to_private), (std::vector{Unmap, SetAttributes}));
        const auto to_shared =
            planChange(rules, states, Change{kBase + 8 * kPage, kBase + 10 * kPage, kShared.attr, false});
        EXPECT_EQ(kinds(to_shared), (std::vector{SetAttributes, Map}));
        EXPECT_EQ(to_shared.back().start, kBase + 8 * kPage);
        EXPECT_EQ(to_shared.back().end, kBase + 10 * kPage);
    }
}

}  // namespace
}  // namespace tio::core
