// Guest memory: the record of page states that follows the kernel, and what a failed
// undo leaves in it (fail closed).
#include <algorithm>
#include <memory>
#include <optional>

#include "common/checked_math.hpp"
#include "core/guest.hpp"
#include "kernel/kvm.hpp"

namespace tio::core {

void Guest::recordChange(MemoryRegion& r, const Change& change, Rollback& undo) {
    recordChange(r, change, undo,
                 std::make_shared<const std::vector<PageStates::Run>>(r.states.runs(change.start, change.end)));
}

void Guest::recordChange(MemoryRegion& r, const Change& change, Rollback& undo,
                         std::shared_ptr<const std::vector<PageStates::Run>> before) {
    // The record follows the kernel; its undo restores the runs and the byte counts.
    for (const auto& run : *before) {
        r.count(run.value, run.end - run.start, false);
        r.count(change.applied(run.value), run.end - run.start, true);
        r.states.assign(run.start, run.end, change.applied(run.value));
    }
    undo.add([&r, before = std::move(before), change] {
        for (const auto& run : *before) {
            r.count(change.applied(run.value), run.end - run.start, false);
            r.count(run.value, run.end - run.start, true);
            r.states.assign(run.start, run.end, run.value);
        }
    });
}

namespace {

using Window = std::pair<std::uint64_t, std::uint64_t>;  // [start, end)

// Sorted, with overlapping and touching windows merged.
std::vector<Window> merged(std::vector<Window> windows) {
    std::sort(windows.begin(), windows.end());
    std::vector<Window> out;
    for (const auto& w : windows) {
        if (!out.empty() && w.first <= out.back().second) {
            out.back().second = std::max(out.back().second, w.second);
        } else {
            out.push_back(w);
        }
    }
    return out;
}

}  // namespace

std::pair<std::uint64_t, std::uint64_t> Guest::areaSpan(const MemoryRegion& r, std::uint64_t from,
                                                        std::uint64_t to) const {
    // Areas are the maximal runs of pages mapped at one alias (memory_planner.hpp), and
    // outside [from, to) the record is what the kernel holds: an area crossing an edge
    // covers the runs beyond it mapped at the alias of the run next to the edge.
    const MappingRules rules = mappingRules(r);
    if (rules.page_areas) return {from, to};  // one area per page: none crosses an edge
    auto viewAt = [&](std::uint64_t x) { return iommuView(rules, r.states.at(x)); };
    auto widen = [&](std::uint64_t at, bool left) {
        const auto edge = viewAt(left ? at - 1 : at);
        while (edge.mapped && (left ? at > r.gpa : at < r.end())) {
            const auto run = r.states.find(left ? at - 1 : at);
            const auto view = iommuView(rules, run.value);
            if (!view.mapped || view.iova_bit != edge.iova_bit) break;
            at = left ? run.start : run.end;
        }
        return at;
    };
    return {from > r.gpa ? widen(from, true) : from, to < r.end() ? widen(to, false) : to};
}

void Guest::afterRollback() {
    if (!undo_failed_) {
        touched_.clear();
        return;
    }
    undo_failed_ = false;
    // Widened to whole IOAS areas at both edges: an area the steps split or joined
    // there is then inside the window, whole, and goes with it.
    std::vector<Window> windows;
    for (auto [start, end] : std::exchange(touched_, {})) {
        // Whole pages (the kernel unmaps nothing less); a Split/Join point: its page.
        start -= start % kPageSize;
        end = std::max(end, start + kPageSize);
        end += (kPageSize - end % kPageSize) % kPageSize;
        for (const auto& [id, r] : memory_) {
            const std::uint64_t from = std::max(start, r.gpa);
            const std::uint64_t to = std::min(end, r.end());
            if (from >= to) continue;
            const auto [s, e] = areaSpan(r, from, to);
            start = std::min(start, s);
            end = std::max(end, e);
        }
        windows.emplace_back(start, end);
    }
    windows = merged(std::move(windows));
    // The record says revoked at once, whatever the kernel lets the closing do: it must
    // never claim a mapping the daemon cannot vouch for.
    Rollback forward;
    forward.commit();
    for (const auto& [start, end] : windows) {
        for (auto& [id, r] : memory_) {
            const std::uint64_t from = std::max(start, r.gpa);
            const std::uint64_t to = std::min(end, r.end());
            if (from < to) recordRevoked(r, from, to, forward);
        }
        failed_closed_.push_back({start, end - start});
        faults_.push_back({0, "memory-uncertain",
                           "a failed change could not be undone over gpa " + std::to_string(start) + " size " +
                               std::to_string(end - start) + ": revoked (unmapped); convert it again to use it"});
    }
    uncertain_.insert(uncertain_.end(), windows.begin(), windows.end());
    uncertain_ = merged(std::move(uncertain_));
    ++closures_;
    revocations_ += windows.size();
    // What the kernel refuses now is tried again before the next conversion or punch;
    // the fault above already says the range is revoked.
    (void)closeUncertain();
    changed();
}

Result<> Guest::closeUncertain() {
    if (!vm_) uncertain_.clear();  // the IOAS went with the VM
    if (uncertain_.empty()) return {};
    std::vector<Window> left;
    std::optional<Error> first;  // the first refusal, for the error
    for (const auto& [start, end] : uncertain_) {
        // Nothing mapped inside first; then, in place, the attributes back to the record
        // (a private page is then unreachable through the IOMMU).
        Result<> closed = clearWindow(start, end);
        for (auto& [id, r] : memory_) {
            const std::uint64_t from = std::max(start, r.gpa);
            const std::uint64_t to = std::min(end, r.end());
            if (closed && from < to) closed = attributesToRecord(r, from, to);
        }
        if (closed) continue;
        left.emplace_back(start, end);
        if (!first) first = closed.error();
    }
    uncertain_ = std::move(left);
    if (uncertain_.empty()) return {};
    return fail(Code::Kernel, "memory a failed undo left uncertain (" + std::to_string(uncertain_.size()) +
                                  " windows) could not be closed yet (" + first->message + "); nothing else was done");
}

Result<> Guest::clearWindow(std::uint64_t start, std::uint64_t end) {
    Result<> result;
    for (std::uint64_t bit : {std::uint64_t{0}, kSharedAliasBit}) {
        (void)vm_->iommufd.splitArea(ioasId(), start | bit);
        (void)vm_->iommufd.splitArea(ioasId(), end | bit);
        auto u = vm_->iommufd.unmap(ioasId(), start | bit, end - start);
        if (!u && u.error().sys_errno != ENOENT && result) result = std::unexpected(u.error());
    }
    return result;
}

void Guest::recordRevoked(MemoryRegion& r, std::uint64_t from, std::uint64_t to, Rollback& undo) {
    for (const auto& run : r.states.runs(from, to)) {
        recordChange(r, Change{.start = run.start, .end = run.end, .attr = run.value.attr, .revoked = true}, undo);
    }
}

Result<> Guest::attributesToRecord(MemoryRegion& r, std::uint64_t from, std::uint64_t to) {
    Result<> result;
    if (vm_->model != MemoryModel::InPlace) return result;
    for (const auto& run : r.states.runs(from, to)) {  // every run, whatever one refuses
        auto set = kernel::setGuestMemfdAttributes(sys_, r.gmem.get(), r.fileOffset(run.start), run.end - run.start,
                                                   run.value.attr == MemoryState::Private);
        if (!set && result) result = std::unexpected(set.error().error);
    }
    return result;
}

std::vector<RevokedRange> Guest::takeFailedClosed() { return std::exchange(failed_closed_, {}); }

}  // namespace tio::core
