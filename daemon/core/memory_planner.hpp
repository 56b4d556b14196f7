#pragma once
// The conversion planner: from a region's recorded page states and one change, the
// ordered kernel operations that carry the IOMMU and the memory attributes from the
// old layout to the new one in the order the platform requires (architecture.md
// section 6):
//   1. split areas where a mapped stretch must lose part of itself (hitless);
//   2. unmap what must not be mapped once the attribute changes, and lower page-size
//      limits (hitless split) where the new state needs smaller IOPTEs;
//   3. change the attribute (KVM_SET_MEMORY_ATTRIBUTES2 in place; under the separate
//      model the VMM does it, around its ConvertMemory call);
//   4. raise limits (hitless merge) and map what the new state calls for;
//   5. join areas that are now one mapped stretch (hitless merge).
// Invariant kept across every plan: the IOAS areas of a region are exactly its maximal
// runs of pages mapped at the same alias (or, with MappingRules::page_areas, its
// mapped pages one by one), and the page-size limit of every mapped page is its
// state's. Work is proportional to the runs [a, b) touches, never to the size
// of the guest. Pure: no kernel, testable on its own.
#include <cstdint>
#include <optional>
#include <vector>

#include "common/platform.hpp"
#include "core/memory_rules.hpp"
#include "core/page_states.hpp"

namespace tio::core {

enum class StepKind : std::uint8_t { Split, Unmap, Limit, SetAttributes, Map, Join };

// GPAs throughout; the executor adds iova_bit and the region's file offset.
struct Step {
    StepKind kind = StepKind::Split;
    std::uint64_t start = 0;  // Split/Join: the point
    std::uint64_t end = 0;
    std::uint64_t iova_bit = 0;
    std::uint64_t max_pgsize = 0;            // Limit: the new limit
    std::uint64_t undo_max_pgsize = 0;       // Limit: the limit before (hitless steps only)
    bool undo_limit = false;                 // Limit: whether undoing needs the old limit back
    MemoryState attr = MemoryState::Shared;  // SetAttributes
    bool operator==(const Step&) const = default;
};

// One change to a range: every page gets attr (or keeps its own) and `revoked`.
struct Change {
    std::uint64_t start = 0;
    std::uint64_t end = 0;
    std::optional<MemoryState> attr;  // nullopt: keep each page's attribute
    bool revoked = false;
    [[nodiscard]] PageState applied(PageState old) const { return {attr.value_or(old.attr), revoked}; }
};

// `states` covers the whole region; the change lies inside.
[[nodiscard]] std::vector<Step> planChange(const MappingRules& rules, const PageStates& states, const Change& change);

}  // namespace tio::core
