// Guest memory: regions, conversions and hole punching (architecture.md section 6).
// The planner decides which kernel operations, in which order; this file runs them,
// registers each one's undo, and keeps the record of page states.
#include "common/checked_math.hpp"
#include "core/guest.hpp"
#include "core/memory_planner.hpp"

namespace tio::core {
namespace {

// KVM_USER_MEM_SLOTS on x86 (include/linux/kvm_host.h: 32767).
constexpr std::uint32_t kMaxMemslots = 32767;

bool validRange(std::uint64_t gpa, std::uint64_t size) {
    return size != 0 && checkedEnd(gpa, size).has_value() && pageAligned(gpa) && pageAligned(size);
}

// The journal's record of one operation: the intent goes out when this is made, the
// outcome when it is destroyed, after the operation's Rollback (declare it first).
class Intent {
public:
    Intent(MemoryObserver* observer, const MemoryIntent& intent)
        : observer_(observer), seq_(observer != nullptr ? observer->intent(intent) : 0) {}
    Intent(const Intent&) = delete;
    Intent& operator=(const Intent&) = delete;
    ~Intent() {
        if (observer_ != nullptr) observer_->outcome(seq_, done_);
    }
    void done() { done_ = true; }

private:
    MemoryObserver* observer_;
    std::uint64_t seq_;
    bool done_ = false;
};

}  // namespace

Result<std::vector<Guest::RegionSlice>> Guest::slicesOf(std::uint64_t gpa, std::uint64_t size) {
    std::vector<RegionSlice> out;
    const std::uint64_t end = gpa + size;
    std::uint64_t at = gpa;
    auto it = memory_by_gpa_.upper_bound(gpa);
    if (it != memory_by_gpa_.begin()) --it;
    for (; it != memory_by_gpa_.end() && at < end; ++it) {
        MemoryRegion& r = memory_.at(it->second);
        if (r.end() <= at) continue;
        if (r.gpa > at) break;  // a hole
        out.push_back({&r, at, std::min(end, r.end())});
        at = out.back().end;
    }
    if (at < end) return fail(Code::InvalidArgument, "the range is not all guest memory (AddMemory it first)");
    return out;
}

Result<std::vector<RevokedRange>> Guest::applyChange(MemoryRegion& r, const Change& change, Rollback& undo,
                                                     ApplyMode mode) {
    const std::vector<Step> plan = planChange(config_.platform, r.states, r.gpa, r.end(), change);
    const bool maps = std::any_of(plan.begin(), plan.end(),
                                  [](const Step& s) { return s.kind == StepKind::Map || s.kind == StepKind::Unmap; });
    if (mode == ApplyMode::ModelOnly) {
        // Replaying the journal: the kernel did all of it already; only the record and
        // what the live call reported (the ranges it unmapped) are redone.
        std::vector<RevokedRange> unmapped;
        for (const Step& s : plan)
            if (s.kind == StepKind::Unmap) unmapped.push_back({s.start, s.end - s.start});
        recordChange(r, change, undo);
        return unmapped;
    }
    if (maps && !vm_->features.map_file) {
        return fail(Code::NotSupported, "this kernel's iommufd cannot map files (IOMMU_IOAS_MAP_FILE)");
    }
    if (needsReshape(plan) && !vm_->features.reshape) {
        return fail(Code::NotSupported,
                    "this change needs hitless IOAS restructuring (IOMMU_IOAS_RESHAPE), which this kernel lacks");
    }
    kernel::Iommufd& iommufd = vm_->iommufd;
    const std::uint32_t ioas = ioasId();
    const int gmem = r.gmem.get();
    const auto before = r.states.runs(change.start, change.end);
    std::vector<RevokedRange> unmapped;
    for (const Step& s : plan) {
        const std::uint64_t iova = s.start | s.iova_bit;
        const std::uint64_t len = s.end - s.start;
        Result<> done;
        switch (s.kind) {
            case StepKind::Split:
                done = iommufd.splitArea(ioas, iova);
                if (done) undo.add([&iommufd, ioas, iova] { (void)iommufd.joinAreas(ioas, iova); });
                break;
            case StepKind::Join:
                done = iommufd.joinAreas(ioas, iova);
                if (done) undo.add([&iommufd, ioas, iova] { (void)iommufd.splitArea(ioas, iova); });
                break;
            case StepKind::Unmap: {
                auto u = iommufd.unmap(ioas, iova, len);
                if (!u) {
                    done = std::unexpected(u.error());
                    break;
                }
                unmapped.push_back({s.start, len});
                undo.add([&iommufd, ioas, iova, len, gmem, off = r.fileOffset(s.start)] {
                    (void)iommufd.mapFile(ioas, gmem, off, len, iova, true);
                });
                break;
            }
            case StepKind::Map:
                done = iommufd.mapFile(ioas, gmem, r.fileOffset(s.start), len, iova, true);
                if (done) undo.add([&iommufd, ioas, iova, len] { (void)iommufd.unmap(ioas, iova, len); });
                break;
            case StepKind::Limit:
                done = iommufd.limitPageSize(ioas, iova, len, s.max_pgsize);
                if (done && s.undo_limit) {
                    undo.add([&iommufd, ioas, iova, len, old = s.undo_max_pgsize] {
                        (void)iommufd.limitPageSize(ioas, iova, len, old);
                    });
                }
                break;
            case StepKind::SetAttributes:
                if (!vm_->has_memory_attributes) break;  // a VM without private memory
                done = vm_->vm.setMemoryAttributes(s.start, len, s.attr == MemoryState::Private);
                if (done) {
                    undo.add([this, before, to = s.attr] {
                        for (const auto& run : before) {
                            if (run.value.attr == to) continue;
                            (void)vm_->vm.setMemoryAttributes(run.start, run.end - run.start,
                                                              run.value.attr == MemoryState::Private);
                        }
                    });
                }
                break;
        }
        if (!done) return std::unexpected(done.error());
    }
    recordChange(r, change, undo);
    return unmapped;
}

void Guest::recordChange(MemoryRegion& r, const Change& change, Rollback& undo) {
    // The record follows the kernel; its undo restores the runs and the byte counts.
    const auto before = r.states.runs(change.start, change.end);
    auto account = [&r](const PageState& st, std::uint64_t bytes, bool add) {
        std::uint64_t& priv = r.private_bytes;
        std::uint64_t& rev = r.revoked_bytes;
        if (st.attr == MemoryState::Private) priv = add ? priv + bytes : priv - bytes;
        if (st.revoked) rev = add ? rev + bytes : rev - bytes;
    };
    for (const auto& run : before) {
        account(run.value, run.end - run.start, false);
        account(change.applied(run.value), run.end - run.start, true);
        r.states.assign(run.start, run.end, change.applied(run.value));
    }
    undo.add([&r, before, change, account] {
        for (const auto& run : before) {
            account(change.applied(run.value), run.end - run.start, false);
            account(run.value, run.end - run.start, true);
            r.states.assign(run.start, run.end, run.value);
        }
    });
}

Result<ObjectId> Guest::addMemory(Who, std::uint64_t gpa, std::uint64_t size, UniqueFd gmem, std::uint64_t offset,
                                  MemoryState initial) {
    if (auto r = guard_.admitMemoryRegion(memory_.size()); !r) return std::unexpected(r.error());
    if (auto r = requireVm("AddMemory"); !r) return std::unexpected(r.error());
    if (!validRange(gpa, size) || !pageAligned(offset) || !checkedEnd(offset, size)) {
        return fail(Code::InvalidArgument, "gpa, size and offset must be 4 KiB aligned, size non-zero, no overflow");
    }
    const std::uint64_t end = gpa + size;
    for (const auto& [id, r] : memory_) {
        if (gpa < r.end() && r.gpa < end) {
            return fail(Code::InvalidArgument, "the range overlaps memory region " + std::to_string(id));
        }
    }
    if (next_memslot_ >= kMaxMemslots) return fail(Code::LimitExceeded, "no KVM memslot left");
    const std::uint32_t slot = next_memslot_;
    const ObjectId id = next_id_;
    MemoryRegion region{.id = id, .gpa = gpa, .size = size, .offset = offset, .gmem = std::move(gmem), .memslot = slot};
    Intent intent(
        observer_,
        MemoryIntent{.kind = MemoryIntent::Kind::Add, .region_id = id, .gpa = gpa, .size = size, .memslot = slot});
    Rollback undo;
    // The kernel is the judge of the fd: binding it to a memslot of this VM only
    // succeeds for a guest_memfd of this VM with offset+size inside it.
    if (auto r = vm_->vm.setMemslot(slot, gpa, size, region.gmem.get(), offset); !r) return std::unexpected(r.error());
    undo.add([&] { (void)vm_->vm.deleteMemslot(slot); });
    // Which file it is, for naming it once in the fd store whatever number of regions use it.
    auto identity = kernel::guestMemfdIdentity(sys_, region.gmem.get());
    if (!identity) return std::unexpected(identity.error());
    region.file_identity = {identity->dev, identity->ino};
    // New memory is shared to KVM and mapped nowhere: bring it to `initial` the way
    // every conversion goes, so the IOMMU layout follows the same rules.
    region.states.assign(gpa, end, PageState{.attr = MemoryState::Shared, .revoked = true});
    region.revoked_bytes = size;
    if (auto r = applyChange(region, Change{.start = gpa, .end = end, .attr = initial, .revoked = false}, undo); !r) {
        return std::unexpected(r.error());
    }
    if (auto r = objects_.add({ObjectKind::Memory, id}, 0, holdsOf(region)); !r) return std::unexpected(r.error());
    undo.commit();
    intent.done();
    ++next_memslot_;
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
    Rollback undo;
    // Unmap first: nothing may DMA into memory KVM no longer backs. The attribute
    // goes back to shared so the GPA range is clean for whatever is added there next.
    auto unmapped =
        applyChange(m, Change{.start = m.gpa, .end = m.end(), .attr = MemoryState::Shared, .revoked = true}, undo);
    if (!unmapped) return std::unexpected(unmapped.error());
    if (auto r = vm_->vm.deleteMemslot(m.memslot); !r) return std::unexpected(r.error());
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
        auto slices = slicesOf(c.gpa, c.size);
        if (!slices) return std::unexpected(slices.error());
        for (const RegionSlice& s : *slices) {
            auto r = applyChange(*s.region, Change{.start = s.start, .end = s.end, .attr = c.to, .revoked = false},
                                 undo, mode);
            if (!r) return std::unexpected(r.error());
        }
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
        if (auto s = slicesOf(c.gpa, c.size); !s) return std::unexpected(s.error());
    }
    // Only a call that would run spends budget.
    if (auto r = guard_.takeConversions(ranges.size()); !r) return r;
    Intent intent(observer_,
                  MemoryIntent{.kind = MemoryIntent::Kind::Convert, .ranges = {ranges.begin(), ranges.end()}});
    const std::uint64_t conversions_before = conversions_;
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
        std::uint64_t start = s.start;
        std::uint64_t end = s.end;
        if (!vm_->features.reshape) {
            // Without a hitless cut, whole covering areas go (Jason's rule): widen to the
            // mapped stretches around each end.
            auto widen = [&](std::uint64_t at, bool left) {
                const auto run = r.states.find(at);
                const IommuView v = iommuView(config_.platform, run->value);
                if (!v.mapped) return at;
                std::uint64_t edge = left ? run->start : run->end;
                for (;;) {
                    if (left ? edge == r.gpa : edge == r.end()) return edge;
                    const auto next = r.states.find(left ? edge - 1 : edge);
                    const IommuView nv = iommuView(config_.platform, next->value);
                    if (!nv.mapped || nv.iova_bit != v.iova_bit) return edge;
                    edge = left ? next->start : next->end;
                }
            };
            start = widen(start, true);
            end = widen(end - 1, false);
        }
        auto unmapped =
            applyChange(r, Change{.start = start, .end = end, .attr = std::nullopt, .revoked = true}, undo, mode);
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
    Intent intent(observer_, MemoryIntent{.kind = MemoryIntent::Kind::Punch, .ranges = {{gpa, size}}});
    const std::uint64_t revocations_before = revocations_;
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
