// Guest memory: regions, conversions and hole punching (architecture.md section 6).
// The planner decides which kernel operations, in which order; memory_apply.cpp runs
// them, memory_record.cpp keeps the record of page states.

#include <bit>

#include "common/checked_math.hpp"
#include "core/guest.hpp"
#include "core/memory_planner.hpp"

namespace tio::core {
namespace {

bool validRange(std::uint64_t gpa, std::uint64_t size) {
    return size != 0 && checkedEnd(gpa, size).has_value() && pageAligned(gpa) && pageAligned(size);
}

// The journal's record of one operation: the intent goes out when this is made; the
// outcome at done(), once the kernel holds the result and before the change is
// announced (whatever snapshot that triggers covers the whole record), or, for an
// operation that failed, when this is destroyed, after its Rollback (declare it first).
class Intent {
public:
    Intent(MemoryObserver* observer, const MemoryIntent& intent)
        : observer_(observer), seq_(observer != nullptr ? observer->intent(intent) : 0) {}
    Intent(const Intent&) = delete;
    Intent& operator=(const Intent&) = delete;
    ~Intent() {
        if (observer_ != nullptr && !recorded_) observer_->outcome(seq_, false);
    }
    void done() {
        if (observer_ != nullptr) observer_->outcome(seq_, true);
        recorded_ = true;
    }

private:
    MemoryObserver* observer_;
    std::uint64_t seq_;
    bool recorded_ = false;
};

}  // namespace

template <typename F>
Result<> Guest::forEachSlice(std::uint64_t gpa, std::uint64_t size, F&& f) {
    const std::uint64_t end = gpa + size;
    auto first = memory_by_gpa_.upper_bound(gpa);
    if (first != memory_by_gpa_.begin()) --first;
    // Two walks over the few regions: the first proves the range is all memory, so
    // `f` never sees part of a range that fails.
    for (const bool apply : {false, true}) {
        std::uint64_t at = gpa;
        for (auto it = first; it != memory_by_gpa_.end() && at < end; ++it) {
            MemoryRegion& r = memory_.at(it->second);
            if (r.end() <= at) continue;
            if (r.gpa > at) break;  // a hole
            const RegionSlice slice{&r, at, std::min(end, r.end())};
            if (apply) {
                if (auto done = f(slice); !done) return done;
            }
            at = slice.end;
        }
        if (at < end) return fail(Code::InvalidArgument, "the range is not all guest memory (AddMemory it first)");
    }
    return {};
}

Result<std::vector<Guest::RegionSlice>> Guest::slicesOf(std::uint64_t gpa, std::uint64_t size) {
    std::vector<RegionSlice> out;
    auto walked = forEachSlice(gpa, size, [&](const RegionSlice& s) -> Result<> {
        out.push_back(s);
        return {};
    });
    if (!walked) return std::unexpected(walked.error());
    return out;
}

Result<ObjectId> Guest::addMemory(Who, std::uint64_t gpa, std::uint64_t size, UniqueFd gmem, std::uint64_t offset,
                                  MemoryState initial, std::optional<SharedBacking> shared) {
    if (auto r = guard_.admitMemoryRegion(memory_.size()); !r) return std::unexpected(r.error());
    if (auto r = requireVm("AddMemory"); !r) return std::unexpected(r.error());
    if (!validRange(gpa, size) || !pageAligned(offset) || !checkedEnd(offset, size)) {
        return fail(Code::InvalidArgument, "gpa, size and offset must be 4 KiB aligned, size non-zero, no overflow");
    }
    const std::uint64_t end = gpa + size;
    if (end > guestAddressLimit(config_.platform)) {
        return fail(Code::InvalidArgument, "the range ends above the guest's physical address space (2^" +
                                               std::to_string(std::countr_zero(guestAddressLimit(config_.platform))) +
                                               ")");
    }
    for (const auto& [id, r] : memory_) {
        if (gpa < r.end() && r.gpa < end) {
            return fail(Code::InvalidArgument, "the range overlaps memory region " + std::to_string(id));
        }
    }
    // The kernel's name for the file says what it is; its size bounds the range.
    auto gmem_info = kernel::inspectGuestMemfd(sys_, gmem.get());
    if (!gmem_info) return std::unexpected(gmem_info.error());
    if (offset + size > gmem_info->size) {
        return fail(Code::InvalidArgument,
                    "offset+size is beyond the guest_memfd (" + std::to_string(gmem_info->size) + " bytes)");
    }
    const ObjectId id = next_id_;
    MemoryRegion region{.id = id, .gpa = gpa, .size = size, .offset = offset, .gmem = std::move(gmem)};
    region.file_identity = {gmem_info->identity.dev, gmem_info->identity.ino};
    // A guest_memfd page is guest memory at one GPA at most (kvm_gmem_bind's rule).
    for (const auto& [other_id, r] : memory_) {
        if (r.file_identity == region.file_identity && offset < r.offset + r.size && r.offset < offset + size) {
            return fail(Code::InvalidArgument,
                        "that guest_memfd range is already memory region " + std::to_string(other_id));
        }
    }
    if (shared) {
        if (vm_->model == MemoryModel::InPlace) {
            return fail(Code::InvalidArgument,
                        "this kernel converts in place: shared pages are the guest_memfd's, a shared-fd has no use");
        }
        if (!vm_->features.map_file) {
            return fail(Code::NotSupported,
                        "this kernel's iommufd cannot map the shared memfd (IOMMU_IOAS_MAP_FILE is missing)");
        }
        auto memfd = kernel::inspectMemfd(sys_, shared->fd.get());
        if (!memfd) return std::unexpected(memfd.error());
        if (!pageAligned(shared->offset) || !checkedEnd(shared->offset, size) || shared->offset + size > memfd->size) {
            return fail(Code::InvalidArgument,
                        "shared-offset must be 4 KiB aligned and shared-offset+size within "
                        "the shared memfd (" +
                            std::to_string(memfd->size) + " bytes)");
        }
        region.shared = std::move(shared->fd);
        region.shared_offset = shared->offset;
        region.shared_identity = {memfd->identity.dev, memfd->identity.ino};
    }
    Intent intent(observer_, MemoryIntent{.kind = MemoryIntent::Kind::Add, .region_id = id, .gpa = gpa, .size = size});
    MemoryOperation operation(*this);
    Rollback undo;
    if (vm_->model == MemoryModel::InPlace && !vm_->gmem_map_file) {
        // What the probe learns is kept only with the region it was learnt for: a
        // failed call leaves the model as it found it.
        if (auto r = probeGuestMemfdMapping(region.gmem.get(), offset); !r) return std::unexpected(r.error());
        undo.add([this] { vm_->gmem_map_file.reset(); });
    }
    if (vm_->model == MemoryModel::InPlace && !*vm_->gmem_map_file) {
        auto view = kernel::mapGuestMemfd(sys_, region.gmem.get(), offset, size);
        if (!view) return std::unexpected(view.error());
        region.view = std::move(*view);  // empty when the guest_memfd is not mappable
    }
    // New memory is mapped nowhere: bring it to `initial` the way every conversion
    // goes, so the IOMMU layout follows the same rules. In place, the attribute is
    // the daemon's to set and whatever the guest_memfd holds now is not trusted: the
    // record starts at the opposite state, so the plan sets `initial` explicitly
    // before it maps anything. Under the separate model `initial` is the VM-scoped
    // attribute the VMM set.
    MemoryState assumed = initial;
    if (vm_->model == MemoryModel::InPlace) {
        assumed = initial == MemoryState::Shared ? MemoryState::Private : MemoryState::Shared;
    }
    const PageState unmapped{.attr = assumed, .revoked = true};
    region.states = PageStates(gpa, size, unmapped);
    region.count(unmapped, size, true);
    if (auto r = applyChange(region, Change{.start = gpa, .end = end, .attr = initial, .revoked = false}, undo); !r) {
        return std::unexpected(r.error());
    }
    if (auto r = objects_.add({ObjectKind::Memory, id}, 0, holdsOf(region)); !r) return std::unexpected(r.error());
    undo.commit();
    intent.done();
    ++next_id_;
    memory_.emplace(id, std::move(region));
    memory_by_gpa_.emplace(gpa, id);
    changed();
    return id;
}

Result<> Guest::removeMemory(Who, ObjectId id) {
    if (auto r = requireVm("RemoveMemory"); !r) return std::unexpected(r.error());
    auto it = memory_.find(id);
    if (it == memory_.end()) return fail(Code::NotFound, "no such memory region");
    MemoryRegion& m = it->second;
    Intent intent(observer_, MemoryIntent{.kind = MemoryIntent::Kind::Remove, .region_id = id});
    MemoryOperation operation(*this);
    Rollback undo;
    // Unmapped, then forgotten: the memory stays the VMM's, attributes and all.
    auto unmapped = applyChange(m, Change{.start = m.gpa, .end = m.end(), .attr = std::nullopt, .revoked = true}, undo);
    if (!unmapped) return std::unexpected(unmapped.error());
    undo.commit();
    intent.done();
    (void)objects_.erase({ObjectKind::Memory, id});
    memory_by_gpa_.erase(m.gpa);
    memory_.erase(it);
    changed();
    return {};
}

Result<> Guest::convertRanges(std::span<const MemoryConversion> ranges, Rollback& undo, ApplyMode mode) {
    for (const auto& c : ranges) {
        auto applied = forEachSlice(c.gpa, c.size, [&](const RegionSlice& s) -> Result<> {
            auto r = applyChange(*s.region, Change{.start = s.start, .end = s.end, .attr = c.to, .revoked = false},
                                 undo, mode);
            if (!r) return std::unexpected(r.error());
            return {};
        });
        if (!applied) return applied;
    }
    conversions_ += ranges.size();
    return {};
}

Result<> Guest::convertMemory(Who, std::span<const MemoryConversion> ranges) {
    if (auto r = requireVm("ConvertMemory"); !r) return std::unexpected(r.error());
    if (ranges.empty()) return fail(Code::InvalidArgument, "no ranges to convert");
    if (ranges.size() > kMaxConversionsPerCall) {
        return fail(Code::LimitExceeded, "at most " + std::to_string(kMaxConversionsPerCall) + " ranges per call");
    }
    // Every range is checked before the first kernel call.
    for (const auto& c : ranges) {
        if (!validRange(c.gpa, c.size)) {
            return fail(Code::InvalidArgument, "gpa and size must be 4 KiB aligned, size non-zero, no overflow");
        }
        auto usable = forEachSlice(c.gpa, c.size, [&](const RegionSlice& s) -> Result<> {
            if (vm_->model == MemoryModel::Separate && !s.region->shared) {
                return fail(Code::InvalidArgument,
                            "memory region " + std::to_string(s.region->id) +
                                " has no shared backing: under the separate model the daemon maps shared pages from "
                                "the memfd AddMemory's options[\"shared-fd\"] names, and has nothing else to convert");
            }
            return {};
        });
        if (!usable) return usable;
    }
    if (auto r = closeUncertain(); !r) return r;
    // Only a call that would run spends budget.
    if (auto r = guard_.takeConversions(ranges.size()); !r) return r;
    Intent intent(observer_,
                  MemoryIntent{.kind = MemoryIntent::Kind::Convert, .ranges = {ranges.begin(), ranges.end()}});
    const std::uint64_t conversions_before = conversions_;
    MemoryOperation operation(*this, kMaxKernelCallsPerCall);
    Rollback undo;
    undo.add([this, conversions_before] { conversions_ = conversions_before; });
    if (auto r = convertRanges(ranges, undo, ApplyMode::Normal); !r) return r;
    undo.commit();
    intent.done();
    changed();
    return {};
}

Result<std::vector<RevokedRange>> Guest::revokeRange(std::uint64_t gpa, std::uint64_t size, Rollback& undo,
                                                     ApplyMode mode) {
    auto slices = slicesOf(gpa, size);
    if (!slices) return std::unexpected(slices.error());
    std::vector<RevokedRange> revoked;
    for (const RegionSlice& s : *slices) {
        MemoryRegion& r = *s.region;
        // Exactly the range: with IOMMU_IOAS_RESHAPE the areas are cut at its ends
        // hitlessly; without it every area is one page (MappingRules::page_areas).
        auto unmapped =
            applyChange(r, Change{.start = s.start, .end = s.end, .attr = std::nullopt, .revoked = true}, undo, mode);
        if (!unmapped) return std::unexpected(unmapped.error());
        for (const RevokedRange& u : *unmapped) {
            if (!revoked.empty() && revoked.back().gpa + revoked.back().size == u.gpa) revoked.back().size += u.size;
            else revoked.push_back(u);
        }
    }
    revocations_ += revoked.size();
    return revoked;
}

Result<std::vector<RevokedRange>> Guest::punchHole(Who, std::uint64_t gpa, std::uint64_t size) {
    if (auto r = requireVm("PunchHole"); !r) return std::unexpected(r.error());
    if (!validRange(gpa, size)) {
        return fail(Code::InvalidArgument, "gpa and size must be 4 KiB aligned, size non-zero, no overflow");
    }
    auto slices = slicesOf(gpa, size);
    if (!slices) return std::unexpected(slices.error());
    if (auto r = closeUncertain(); !r) return std::unexpected(r.error());
    Intent intent(observer_, MemoryIntent{.kind = MemoryIntent::Kind::Punch, .ranges = {{gpa, size}}});
    const std::uint64_t revocations_before = revocations_;
    MemoryOperation operation(*this, kMaxKernelCallsPerCall);
    Rollback undo;
    undo.add([this, revocations_before] { revocations_ = revocations_before; });
    auto revoked = revokeRange(gpa, size, undo, ApplyMode::Normal);
    if (!revoked) return std::unexpected(revoked.error());
    // Only now, with no IOAS area left over them, are the pages freed.
    for (const RegionSlice& s : *slices) {
        if (auto r =
                kernel::punchGuestMemfd(sys_, s.region->gmem.get(), s.region->fileOffset(s.start), s.end - s.start);
            !r) {
            return std::unexpected(r.error());
        }
    }
    undo.commit();
    intent.done();
    changed();
    return revoked;
}

}  // namespace tio::core
