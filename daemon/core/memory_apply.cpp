// Guest memory: one change of a region run in the kernel. The planner decides which
// kernel operations, in which order (memory_planner.hpp); this runs them, registers
// each one's undo (none of which maps or makes private once one failed: fail closed),
// and spends the operation's kernel-call budget.

#include <memory>

#include "core/guest.hpp"
#include "core/memory_planner.hpp"

namespace tio::core {

Result<std::vector<RevokedRange>> Guest::applyChange(MemoryRegion& r, const Change& change, Rollback& undo,
                                                     ApplyMode mode) {
    const MappingRules rules = mappingRules(r);
    const std::vector<Step> plan = planChange(rules, r.states, change);
    // The runs the change starts from: the record's undo puts them back, and in place
    // a failed attribute change is put back from them. Shared, as both undos hold them.
    const auto before = std::make_shared<const std::vector<PageStates::Run>>(r.states.runs(change.start, change.end));
    if (mode == ApplyMode::ModelOnly) {
        // Replaying the journal: the kernel did all of it already; only the record and
        // what the live call reported (the ranges it unmapped) are redone.
        std::vector<RevokedRange> unmapped;
        for (const Step& s : plan)
            if (s.kind == StepKind::Unmap) unmapped.push_back({s.start, s.end - s.start});
        recordChange(r, change, undo, before);
        return unmapped;
    }
    // The operation's budget, before anything of this change runs (a map of page
    // areas is a call per page).
    std::size_t cost = 0;
    for (const Step& s : plan) {
        cost += rules.page_areas && s.kind == StepKind::Map ? (s.end - s.start) / kPageAreaSize : 1;
    }
    if (cost > call_budget_) {
        return fail(Code::LimitExceeded, "the call needs more than " + std::to_string(kMaxKernelCallsPerCall) +
                                             " kernel calls: split it into smaller batches");
    }
    call_budget_ -= cost;
    kernel::Iommufd& iommufd = vm_->iommufd;
    const std::uint32_t ioas = ioasId();
    const bool in_place = vm_->model == MemoryModel::InPlace;
    // What the IOMMU maps: in place, the guest_memfd by file, or by address through
    // the daemon's view of it; under the separate model, the shared memfd (only
    // shared pages are ever mapped there).
    const bool by_address = in_place && !vm_->gmem_map_file.value_or(false);
    auto mapArea = [&iommufd, ioas, &r, in_place, by_address](std::uint64_t gpa, std::uint64_t len,
                                                              std::uint64_t iova) -> Result<> {
        if (by_address) return iommufd.mapAddress(ioas, r.view.address() + (gpa - r.gpa), len, iova, true);
        if (in_place) return iommufd.mapFile(ioas, r.gmem.get(), r.fileOffset(gpa), len, iova, true);
        return iommufd.mapFile(ioas, r.shared.get(), r.sharedOffset(gpa), len, iova, true);
    };
    // One area, or one per page (MappingRules::page_areas); all of it or none.
    auto mapRange = [this, mapArea, &iommufd, ioas, page_areas = rules.page_areas](std::uint64_t gpa, std::uint64_t len,
                                                                                   std::uint64_t iova) -> Result<> {
        if (!page_areas) return mapArea(gpa, len, iova);
        for (std::uint64_t at = 0; at < len; at += kPageAreaSize) {
            if (auto done = mapArea(gpa + at, kPageAreaSize, iova + at); !done) {
                // The pages this call mapped; if they stay, the window is closed.
                if (at != 0 && !iommufd.unmap(ioas, iova, at)) undo_failed_ = true;
                return done;
            }
        }
        return {};
    };
    // Puts the attribute of [from, to) back to what `before` recorded (in place only:
    // under the separate model the attribute is the VMM's). Once an undo failed, no
    // page is made private again: it may be mapped shared (fail closed).
    auto restoreAttributes = [this, &r, before](std::uint64_t from, std::uint64_t to, MemoryState changed_to) {
        for (const auto& run : *before) {
            const std::uint64_t s = std::max(from, run.start);
            const std::uint64_t e = std::min(to, run.end);
            if (s >= e || run.value.attr == changed_to) continue;
            const bool to_private = run.value.attr == MemoryState::Private;
            if ((undo_failed_ && to_private) ||
                !kernel::setGuestMemfdAttributes(sys_, r.gmem.get(), r.fileOffset(s), e - s, to_private)) {
                undo_failed_ = true;
            }
        }
    };
    // An undo that is a kernel call: skipped once an undo failed, and failing sets that.
    auto undoCall = [this](auto call) {
        return [this, call] {
            if (undo_failed_ || !call()) undo_failed_ = true;
        };
    };
    std::vector<RevokedRange> unmapped;
    for (const Step& s : plan) {
        const std::uint64_t iova = s.start | s.iova_bit;
        const std::uint64_t len = s.end - s.start;
        touched_.emplace_back(s.start, s.end);
        Result<> done;
        switch (s.kind) {
            case StepKind::Split:
                done = iommufd.splitArea(ioas, iova);
                if (done) undo.add(undoCall([&iommufd, ioas, iova] { return iommufd.joinAreas(ioas, iova); }));
                break;
            case StepKind::Join:
                done = iommufd.joinAreas(ioas, iova);
                if (done) undo.add(undoCall([&iommufd, ioas, iova] { return iommufd.splitArea(ioas, iova); }));
                break;
            case StepKind::Unmap: {
                auto u = iommufd.unmap(ioas, iova, len);
                if (!u) {
                    done = std::unexpected(u.error());
                    break;
                }
                unmapped.push_back({s.start, len});
                undo.add(undoCall([mapRange, gpa = s.start, len, iova] { return mapRange(gpa, len, iova); }));
                break;
            }
            case StepKind::Map:
                done = mapRange(s.start, len, iova);
                // Taking a mapping away is always safe: tried even after a failed undo.
                if (done) {
                    undo.add([this, &iommufd, ioas, iova, len] {
                        if (!iommufd.unmap(ioas, iova, len)) undo_failed_ = true;
                    });
                }
                break;
            case StepKind::Limit:
                done = iommufd.limitPageSize(ioas, iova, len, s.max_pgsize);
                if (done && s.undo_limit) {
                    undo.add(undoCall([&iommufd, ioas, iova, len, old = s.undo_max_pgsize] {
                        return iommufd.limitPageSize(ioas, iova, len, old);
                    }));
                }
                break;
            case StepKind::SetAttributes: {
                // Separate model: the attribute is VM-scoped, and only the VMM may issue
                // VM ioctls; it sets it around its ConvertMemory call (the contract).
                if (!in_place) break;
                auto set = kernel::setGuestMemfdAttributes(sys_, r.gmem.get(), r.fileOffset(s.start), len,
                                                           s.attr == MemoryState::Private);
                if (!set) {
                    // A partial conversion (EAGAIN, error_offset): what the kernel did
                    // convert goes back before the error is reported.
                    if (set.error().converted != 0) restoreAttributes(s.start, s.start + set.error().converted, s.attr);
                    done = std::unexpected(set.error().error);
                    break;
                }
                undo.add([restoreAttributes, start = s.start, end = s.end, to = s.attr] {
                    restoreAttributes(start, end, to);
                });
                break;
            }
        }
        if (!done) {
            // A call the kernel did not answer in time may still be done: its outcome is
            // unknown, so the rollback fails closed as after a failed undo.
            if (done.error().sys_errno == ETIMEDOUT) undo_failed_ = true;
            return std::unexpected(done.error());
        }
    }
    recordChange(r, change, undo, before);
    return unmapped;
}

}  // namespace tio::core
