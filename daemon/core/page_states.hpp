#pragma once
// The page states of one memory region: for every 4 KiB page of [base, base + size),
// its attribute and whether it is revoked (core/memory_rules.hpp), as two page sets
// (common/page_set.hpp): the private pages and the revoked ones. Conversions touch
// only the first; the second is empty unless pages were punched or closed.
//
// Why two sets and not a map of runs (issue 13, tests/bench/page_state_bench.cpp):
// a run costs a std::map node (~64 bytes) and a page pattern can make one run per
// page, so a 1 TiB guest could need gigabytes; a page set never needs more than its
// bitmap (32 MiB for 1 TiB) plus 1%, and where memory is mostly uniform it needs 8
// bytes a run. Everything here costs O(runs visited), never O(pages).
#include <algorithm>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "common/page_set.hpp"
#include "core/memory_rules.hpp"

namespace tio::core {

class PageStates {
public:
    static constexpr std::uint64_t kPage = 4096;

    struct Run {
        std::uint64_t start = 0;  // GPAs, [start, end)
        std::uint64_t end = 0;
        PageState value{};
        bool operator==(const Run&) const = default;
    };

    PageStates() = default;
    // Every page of [base, base + size) in `initial`. base and size page-aligned.
    PageStates(std::uint64_t base, std::uint64_t size, PageState initial);

    // Whether [s, e) is a non-empty page-aligned range of the region (what assign takes).
    [[nodiscard]] bool holds(std::uint64_t s, std::uint64_t e) const;
    // Makes [s, e) hold `v`; holds(s, e).
    void assign(std::uint64_t s, std::uint64_t e, PageState v);
    // The state of the page at gpa, inside the region.
    [[nodiscard]] PageState at(std::uint64_t gpa) const;
    // The maximal run of one state holding gpa, inside the region.
    [[nodiscard]] Run find(std::uint64_t gpa) const;

    // Calls f(start, end, state) for each maximal run overlapping [s, e), clipped to it.
    template <typename F>
    void forEach(std::uint64_t s, std::uint64_t e, F&& f) const {
        (void)forEachWithNeighbours(s, e, std::forward<F>(f));
    }
    // forEach(s, e, f), and the states of the pages just outside [s, e): none at the
    // region's edges. The searches that find the runs find the neighbours too (one per
    // set and run, not three), which is most of what planning a small change costs.
    struct Neighbours {
        std::optional<PageState> left;   // the page before s
        std::optional<PageState> right;  // the page at e
    };
    template <typename F>
    Neighbours forEachWithNeighbours(std::uint64_t s, std::uint64_t e, F&& f) const {
        const std::uint64_t first = pageOf(s);
        const std::uint64_t last = pageOf(e);
        const std::uint64_t region_end = pageOf(base_ + size_);
        Neighbours out;
        if (first >= last) {  // nothing to search: ask for the neighbours alone
            if (first > 0) out.left = stateOf(first - 1);
            if (last < region_end) out.right = stateOf(last);
            return out;
        }
        // One page past the range, so the last stretch says whether it goes on into e.
        const std::uint64_t limit = last < region_end ? last + 1 : last;
        PageSet::Stretch priv;
        PageSet::Stretch revoked;
        if (first > 0) {
            const PageSet::Edge p = private_.edgeAt(first, limit);
            const PageSet::Edge r = revoked_.edgeAt(first, limit);
            out.left = stateOf(p.before, r.before);
            priv = p.stretch;
            revoked = r.stretch;
        } else {
            priv = private_.stretchAt(first, limit);
            revoked = revoked_.stretchAt(first, limit);
        }
        for (std::uint64_t p = first;;) {
            const std::uint64_t q = std::min({priv.end, revoked.end, last});
            f(gpaOf(p), gpaOf(q), stateOf(priv.member, revoked.member));
            if (q == last) break;
            p = q;
            // A set whose stretch goes on past q still holds it: only the other is searched.
            if (priv.end == q) priv = private_.stretchAt(p, limit);
            if (revoked.end == q) revoked = revoked_.stretchAt(p, limit);
        }
        // Both stretches reach e here: a set's membership at e is the stretch's own if
        // it goes on past e, and the other one if it ends there.
        if (last < region_end) {
            out.right = stateOf((priv.end > last) == priv.member, (revoked.end > last) == revoked.member);
        }
        return out;
    }
    [[nodiscard]] std::vector<Run> runs(std::uint64_t s, std::uint64_t e) const;
    [[nodiscard]] std::vector<Run> all() const { return runs(base_, base_ + size_); }

    // The heap bytes held (both sets).
    [[nodiscard]] std::size_t heapBytes() const { return private_.heapBytes() + revoked_.heapBytes(); }
    bool operator==(const PageStates&) const = default;

private:
    [[nodiscard]] std::uint64_t pageOf(std::uint64_t gpa) const { return (gpa - base_) / kPage; }
    [[nodiscard]] std::uint64_t gpaOf(std::uint64_t page) const { return base_ + page * kPage; }
    // The state of a page from its membership in the two sets.
    [[nodiscard]] static PageState stateOf(bool in_private, bool in_revoked) {
        return {in_private ? MemoryState::Private : MemoryState::Shared, in_revoked};
    }
    [[nodiscard]] PageState stateOf(std::uint64_t page) const {
        return stateOf(private_.contains(page), revoked_.contains(page));
    }

    std::uint64_t base_ = 0;
    std::uint64_t size_ = 0;
    PageSet private_;  // page numbers from base_
    PageSet revoked_;
};

}  // namespace tio::core
