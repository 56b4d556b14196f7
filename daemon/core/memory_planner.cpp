#include "core/memory_planner.hpp"

#include <algorithm>

namespace tio::core {
namespace {

constexpr std::uint64_t kSmallestPage = 4096;

bool sameArea(const IommuView& x, const IommuView& y) { return x.mapped && y.mapped && x.iova_bit == y.iova_bit; }

// One stretch of the change with a single old state.
struct Piece {
    std::uint64_t start = 0;
    std::uint64_t end = 0;
    PageState before;
    PageState after;
    IommuView old_view;
    IommuView new_view;
    [[nodiscard]] bool removed() const { return old_view.mapped && !sameArea(old_view, new_view); }
    [[nodiscard]] bool added() const { return new_view.mapped && !sameArea(old_view, new_view); }
    [[nodiscard]] bool stays() const { return sameArea(old_view, new_view); }
};

// One side of a boundary: a piece of the change, or an untouched neighbour (or none).
struct Side {
    IommuView old_view;
    IommuView new_view;
    bool removed = false;
    bool added = false;
};

Side sideOf(const Piece& p) { return {p.old_view, p.new_view, p.removed(), p.added()}; }

}  // namespace

std::vector<Step> planChange(const MappingRules& rules, const PageStates& states, const Change& change) {
    std::vector<Piece> pieces;
    pieces.reserve(4);  // most changes meet one to three runs
    const PageStates::Neighbours around = states.forEachWithNeighbours(
        change.start, change.end, [&](std::uint64_t s, std::uint64_t e, const PageState& old) {
            const PageState now = change.applied(old);
            pieces.push_back({s, e, old, now, iommuView(rules, old), iommuView(rules, now)});
        });
    auto neighbour = [&](std::optional<PageState> state) {
        Side side;
        if (state) side.old_view = side.new_view = iommuView(rules, *state);
        return side;
    };
    const Side left = neighbour(around.left);
    const Side right = neighbour(around.right);
    const std::size_t n = pieces.size();
    // Boundary j lies before piece j (j == n: the end of the change).
    auto boundary = [&](std::size_t j) { return j < n ? pieces[j].start : change.end; };
    auto leftOf = [&](std::size_t j) { return j == 0 ? left : sideOf(pieces[j - 1]); };
    auto rightOf = [&](std::size_t j) { return j == n ? right : sideOf(pieces[j]); };
    const bool limits = usesPageSizeLimits(rules);
    std::vector<Step> plan;
    plan.reserve(2 * n + 4);  // a change's steps: about two per piece, plus its edges

    // 1. Splits: a mapped stretch keeps one side of the boundary and loses the other.
    //    (With page areas every boundary already is one.)
    for (std::size_t j = 0; j <= n && !rules.page_areas; ++j) {
        const Side l = leftOf(j);
        const Side r = rightOf(j);
        if (sameArea(l.old_view, r.old_view) && l.removed != r.removed) {
            plan.push_back(
                {.kind = StepKind::Split, .start = boundary(j), .end = boundary(j), .iova_bit = l.old_view.iova_bit});
        }
    }
    // 2a. Unmaps, one per run of removed pieces that shared an area.
    for (std::size_t i = 0; i < n;) {
        if (!pieces[i].removed()) {
            ++i;
            continue;
        }
        std::size_t k = i + 1;
        while (k < n && pieces[k].removed() && sameArea(pieces[k - 1].old_view, pieces[k].old_view)) ++k;
        plan.push_back({.kind = StepKind::Unmap,
                        .start = pieces[i].start,
                        .end = pieces[k - 1].end,
                        .iova_bit = pieces[i].old_view.iova_bit});
        i = k;
    }
    // 2b. Pages that stay mapped but change state go to the smallest IOPTEs first (a
    //     hitless split): 4 KiB entries are right for either state, so no moment exists
    //     where an entry is larger than the RMP entry or straddles the two kinds.
    if (limits) {
        for (const Piece& p : pieces) {
            if (!p.stays() || p.before == p.after || p.old_view.max_pgsize == kSmallestPage) continue;
            plan.push_back({.kind = StepKind::Limit,
                            .start = p.start,
                            .end = p.end,
                            .iova_bit = p.old_view.iova_bit,
                            .max_pgsize = kSmallestPage,
                            .undo_max_pgsize = p.old_view.max_pgsize,
                            .undo_limit = true});
        }
    }
    // 3. The attribute.
    if (change.attr &&
        std::any_of(pieces.begin(), pieces.end(), [&](const Piece& p) { return p.before.attr != *change.attr; })) {
        plan.push_back(
            {.kind = StepKind::SetAttributes, .start = change.start, .end = change.end, .attr = *change.attr});
    }
    // 4a. Limits up to what the new state allows (hitless merge), now the memory is in it.
    if (limits) {
        for (const Piece& p : pieces) {
            if (!p.stays() || p.before == p.after || p.new_view.max_pgsize == kSmallestPage) continue;
            plan.push_back({.kind = StepKind::Limit,
                            .start = p.start,
                            .end = p.end,
                            .iova_bit = p.new_view.iova_bit,
                            .max_pgsize = p.new_view.max_pgsize,
                            .undo_max_pgsize = kSmallestPage,
                            .undo_limit = true});
        }
    }
    // 4b. Maps, one per run of added pieces that share an area, each page's limit first.
    for (std::size_t i = 0; i < n;) {
        if (!pieces[i].added()) {
            ++i;
            continue;
        }
        std::size_t k = i + 1;
        while (k < n && pieces[k].added() && sameArea(pieces[k - 1].new_view, pieces[k].new_view)) ++k;
        if (limits) {
            for (std::size_t m = i; m < k; ++m) {
                plan.push_back({.kind = StepKind::Limit,
                                .start = pieces[m].start,
                                .end = pieces[m].end,
                                .iova_bit = pieces[m].new_view.iova_bit,
                                .max_pgsize = pieces[m].new_view.max_pgsize});
            }
        }
        plan.push_back({.kind = StepKind::Map,
                        .start = pieces[i].start,
                        .end = pieces[k - 1].end,
                        .iova_bit = pieces[i].new_view.iova_bit});
        i = k;
    }
    // 5. Joins where a new area meets a mapped neighbour of the same alias (never with
    //    page areas: they stay one page each).
    for (std::size_t j = 0; j <= n && !rules.page_areas; ++j) {
        const Side l = leftOf(j);
        const Side r = rightOf(j);
        if (sameArea(l.new_view, r.new_view) && l.added != r.added) {
            plan.push_back(
                {.kind = StepKind::Join, .start = boundary(j), .end = boundary(j), .iova_bit = l.new_view.iova_bit});
        }
    }
    return plan;
}

}  // namespace tio::core
