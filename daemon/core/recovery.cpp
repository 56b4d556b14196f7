// Restart survival (architecture.md section 7): re-adopting what a previous instance
// of the daemon kept in systemd's fd store. Every fd is checked with the kernel
// before the model trusts it; the memory journal is replayed; the one memory
// operation a crash may have interrupted is carried to its end (or, for an
// addition, undone); iommufd objects nobody accounts for are destroyed. Nothing that
// is still right is re-mapped, re-pinned or re-bound.
#include "core/guest.hpp"
#include "core/tdi.hpp"
#include "kernel/pci_sysfs.hpp"

namespace tio::core {
namespace {

// Where objects a crash left behind can be. iommufd gives each new object the
// lowest free id (xa_alloc), so an object made when n were alive has an id of at
// most n + 1. Those alive at the crash are the snapshot's (the known ones) and
// those the interrupted call made, at most a few (HWPT, vIOMMU, vDEVICE): no
// leftover has an id above known + kScrubMargin. Only the unknown ids up to there
// are asked about, in one pass each (the bench's 25-device guest: 8 instead of 33).
constexpr std::uint32_t kScrubMargin = 8;

}  // namespace

void Guest::dropMemoryKernelState(std::uint64_t gpa, std::uint64_t size) {
    // Everything any state could have mapped there, at either alias; ENOENT is fine.
    // The memory itself, attributes and all, is the VMM's.
    for (std::uint64_t bit : {std::uint64_t{0}, kSharedAliasBit}) {
        (void)vm_->iommufd.unmap(ioasId(), gpa | bit, size);
        if (config_.platform == Platform::Snp && vm_->features.reshape) {
            (void)vm_->iommufd.limitPageSize(ioasId(), gpa | bit, size, 0);
        }
    }
}

void Guest::repairWindows(const std::vector<std::pair<std::uint64_t, std::uint64_t>>& ranges, RestoreReport& report) {
    // The interrupted operation may have done any prefix of its steps inside its
    // ranges, nothing outside them. Merge them into disjoint windows per region, clear
    // every window first (cut at its ends, unmap what is there, at either alias), then
    // bring each to the states the record holds: a window's neighbours are then
    // either untouched (consistent) or already rebuilt.
    std::map<std::pair<ObjectId, std::uint64_t>, std::uint64_t> windows;  // (region, start) -> end
    for (const auto& [gpa, size] : ranges) {
        auto slices = slicesOf(gpa, size);
        if (!slices) continue;
        for (const RegionSlice& sl : *slices) {
            std::uint64_t start = sl.start;
            std::uint64_t end = sl.end;
            const ObjectId id = sl.region->id;
            auto it = windows.lower_bound({id, 0});
            while (it != windows.end() && it->first.first == id) {
                if (it->first.second <= end && start <= it->second) {  // overlapping or touching
                    start = std::min(start, it->first.second);
                    end = std::max(end, it->second);
                    it = windows.erase(it);
                } else {
                    ++it;
                }
            }
            windows[{id, start}] = end;
        }
    }
    // What the record holds for each window: the target.
    std::vector<std::pair<MemoryRegion*, std::vector<PageStates::Run>>> targets;
    for (const auto& [key, end] : windows) {
        MemoryRegion& r = memory_.at(key.first);
        targets.emplace_back(&r, r.states.runs(key.second, end));
    }
    Rollback forward;  // forward only
    forward.commit();
    for (const auto& [key, end] : windows) (void)clearWindow(key.second, end);
    for (const auto& [key, end] : windows) {
        MemoryRegion& r = memory_.at(key.first);
        recordRevoked(r, key.second, end, forward);
        // In place the attribute is the daemon's: back to the record.
        (void)attributesToRecord(r, key.second, end);
    }
    for (auto& [r, runs] : targets) {
        for (const auto& run : runs) {
            if (run.value.revoked) continue;
            auto done = applyChange(
                *r, Change{.start = run.start, .end = run.end, .attr = run.value.attr, .revoked = false}, forward);
            if (!done) report.notes.push_back("repairing an interrupted change failed: " + done.error().message);
        }
    }
}

void Guest::replay(const MemoryIntent& intent, bool finished, RestoreReport& report) {
    Rollback forward;  // replay and recovery go forward only
    forward.commit();
    // The record first (what the call meant), then, if it did not finish, the kernel.
    std::vector<std::pair<std::uint64_t, std::uint64_t>> touched;
    touched.reserve(intent.ranges.size());
    for (const auto& r : intent.ranges) touched.emplace_back(r.gpa, r.size);
    switch (intent.kind) {
        case MemoryIntent::Kind::Convert: {
            const auto& ranges = intent.ranges;
            if (auto r = convertRanges(ranges, forward, ApplyMode::ModelOnly); !r) {
                report.notes.push_back("replaying a conversion failed: " + r.error().message);
                break;
            }
            if (!finished) repairWindows(touched, report);
            if (!finished)
                report.notes.push_back("finished a conversion of " + std::to_string(ranges.size()) + " ranges");
            break;
        }
        case MemoryIntent::Kind::Punch:
            for (const auto& r : intent.ranges) {
                if (auto done = revokeRange(r.gpa, r.size, forward, ApplyMode::ModelOnly); !done) {
                    report.notes.push_back("replaying a hole punch failed: " + done.error().message);
                    continue;
                }
                if (finished) continue;
                repairWindows({{r.gpa, r.size}}, report);
                // Punching twice frees nothing twice.
                if (auto slices = slicesOf(r.gpa, r.size)) {
                    for (const RegionSlice& s : *slices) {
                        (void)kernel::punchGuestMemfd(sys_, s.region->gmem.get(), s.region->fileOffset(s.start),
                                                      s.end - s.start);
                    }
                }
                report.notes.push_back("finished a hole punch");
            }
            break;
        case MemoryIntent::Kind::Add:
            // A region the snapshot does not hold has no stored fd: undo the addition.
            if (!memory_.contains(intent.region_id)) {
                dropMemoryKernelState(intent.gpa, intent.size);
                report.notes.push_back(finished ? "dropped a region added after the snapshot (its fd was not kept)"
                                                : "undid an interrupted AddMemory");
            }
            next_id_ = std::max(next_id_, intent.region_id + 1);
            break;
        case MemoryIntent::Kind::Remove: {
            const ObjectKey key{ObjectKind::Memory, intent.region_id};
            if (!objects_.erase(key)) break;  // not there (or, impossibly, held)
            (void)destroyObject(key, 0);
            if (!finished) report.notes.push_back("finished an interrupted RemoveMemory");
            break;
        }
    }
}

void Guest::scrubUnaccountedObjects(RestoreReport& report) {
    // What the table accounts for stays; anything else a crash left behind goes.
    const std::set<std::uint32_t> known = objects_.kernelIds();
    const auto top = static_cast<std::uint32_t>(known.size()) + kScrubMargin;
    // Leaf-first without knowing the leaves: repeat while something went.
    for (bool progressed = true; progressed;) {
        progressed = false;
        for (std::uint32_t id = 1; id <= top; ++id) {
            if (known.contains(id)) continue;
            if (vm_->iommufd.destroy(id)) {
                report.notes.push_back("destroyed iommufd object " + std::to_string(id) + " nothing accounted for");
                progressed = true;
            }
        }
    }
}

Result<RestoreReport> Guest::restore(GuestImage image, const std::vector<JournaledIntent>& journal) {
    RestoreReport report;
    if (vm_ || state_ != GuestState::Empty) return fail(Code::InvalidState, "restore needs an empty guest");
    if (!image.active) return report;  // nothing was running
    if (!image.vm_type) return fail(Code::InvalidArgument, "the snapshot names an unknown VM type");

    // The VM and the iommufd with its IOAS: the kernel vouches for each.
    auto vm = kernel::KvmVm::adopt(sys_, std::move(image.vm));
    if (!vm) return std::unexpected(vm.error());
    auto iommufd = kernel::Iommufd::adopt(sys_, std::move(image.iommufd), image.ioas_id);
    if (!iommufd) return std::unexpected(iommufd.error());
    // What the previous instance probed holds: the kernel cannot change under the fds
    // it kept (nothing twice). Older snapshots did not say: probed again.
    auto features = image.iommu_features ? Result<kernel::IommuFeatures>(*image.iommu_features)
                                         : kernel::probeFeatures(sys_, *iommufd);
    if (!features) return std::unexpected(features.error());
    auto in_place = kernel::kernelConvertsInPlace(sys_);
    if (!in_place) return std::unexpected(in_place.error());
    // The table is rebuilt object by object with the same holds the live calls give
    // (holdsOf), so the pins follow; nothing is counted here.
    if (auto r = objects_.add(kIoasKey, image.ioas_id); !r) return std::unexpected(r.error());
    if (image.hwpt_id != 0) {
        if (auto r = objects_.add(kHwptKey, image.hwpt_id, {kIoasKey}); !r) return std::unexpected(r.error());
    }
    // The claim died with the previous process; the VM is still ours to hold.
    auto vm_claim = host::VmClaim::acquire(config_.claim_dir, config_.name, vm->fd());
    if (!vm_claim) return std::unexpected(vm_claim.error());
    vm_.emplace(VmContext{.vm = std::move(*vm),
                          .type = *image.vm_type,
                          .model = *in_place ? MemoryModel::InPlace : MemoryModel::Separate,
                          .iommufd = std::move(*iommufd),
                          .features = *features,
                          .gmem_map_file = image.gmem_map_file,
                          .claim = std::move(*vm_claim)});
    report.notes.push_back("guest " + force(state_, GuestState::Active, "re-adopted from the snapshot"));
    next_id_ = std::max<ObjectId>(image.next_object_id, 1);
    conversions_ = image.conversions;
    revocations_ = image.revocations;

    for (const VIommu& v : image.viommus) {
        if (!objects_.contains(kHwptKey) || !objects_.add({ObjectKind::VIommu, v.id}, v.kernel_id, holdsOf(v))) {
            report.notes.push_back("dropped vIOMMU " + std::to_string(v.id) + ": its page table is gone");
            continue;
        }
        viommus_.emplace(v.id, v);
    }
    kernel::PciSysfs sysfs(sys_);
    for (GuestImage::DeviceImage& sd : image.devices) {
        const auto bdf = Bdf::parse(sd.bdf);
        auto cdev =
            bdf ? sysfs.vfioCdev(*bdf, sd.vfio_name) : Result<kernel::VfioCdev>(fail(Code::NotFound, "bad BDF"));
        if (!cdev || !sd.vfio || !sd.claim) {
            report.notes.push_back("dropped device " + sd.bdf + ": its fds were not kept");
            continue;  // closing whatever fd there was unbinds it
        }
        auto vfio = kernel::VfioDevice::adopt(sys_, std::move(sd.vfio), cdev->rdev);
        auto claim = host::DeviceClaim::adopt(std::move(sd.claim));
        if (!vfio || !claim) {
            report.notes.push_back("dropped device " + sd.bdf + ": " +
                                   (!vfio ? vfio.error().message : claim.error().message));
            continue;
        }
        Device d{.id = sd.id,
                 .bdf = *bdf,
                 .vfio_name = cdev->name,
                 .claim = std::move(*claim),
                 .vfio = std::move(*vfio),
                 .dev_id = sd.dev_id,
                 .tdisp_capable = sd.tdisp_capable,
                 .tsm_connected = sd.tsm_connected,
                 .dsm = Bdf::parse(sd.dsm).value_or(bdf->dsm()),
                 .vf_token = sd.vf_token};
        if (sd.attached) {
            report.notes.push_back(sd.bdf + " " + force(d.state, DeviceState::Attached, "from the snapshot"));
        }
        if (auto r = objects_.add({ObjectKind::Device, d.id}, d.dev_id, holdsOf(d)); !r) {
            report.notes.push_back("dropped device " + sd.bdf + ": " + r.error().message);
            continue;
        }
        if (sd.vdevice) {
            if (objects_.add({ObjectKind::VDevice, d.id}, sd.vdevice->kernel_id, holdsOf(d, *sd.vdevice))) {
                d.vdevice = sd.vdevice;
            } else {
                report.notes.push_back("dropped the vDEVICE of " + sd.bdf + ": its vIOMMU is gone");
            }
        }
        // The TDI's state is the device's, not the snapshot's: ask it, else trust the
        // snapshot. A quarantine is the daemon's own verdict: it survives the restart.
        d.tdi = sd.tdi.value_or(TdiState::Unlocked);
        if (hasTsmContext(d) && d.tdi != TdiState::Quarantined) {
            if (auto now = readTdiState(d)) {
                if (auto line = force(d.tdi, *now, "as the TSM reports it"); !line.empty()) {
                    report.notes.push_back("TDI of " + sd.bdf + ": " + line);
                }
            }
        }
        devices_.emplace(d.id, std::move(d));
    }

    for (GuestImage::MemoryImage& sm : image.memory) {
        auto id = sm.gmem ? kernel::inspectGuestMemfd(sys_, sm.gmem.get())
                          : Result<kernel::FileInfo>(fail(Code::NotFound, "not kept"));
        // A region that had a shared backing must have it still.
        auto shared = sm.has_shared ? (sm.shared ? kernel::inspectMemfd(sys_, sm.shared.get())
                                                 : Result<kernel::FileInfo>(fail(Code::NotFound, "not kept")))
                                    : Result<kernel::FileInfo>(kernel::FileInfo{});
        if (!id || !shared) {
            dropMemoryKernelState(sm.gpa, sm.size);
            report.notes.push_back("dropped memory region " + std::to_string(sm.id) + ": its " +
                                   (!id ? "guest_memfd" : "shared memfd") + " was not kept");
            continue;
        }
        MemoryRegion r{.id = sm.id,
                       .gpa = sm.gpa,
                       .size = sm.size,
                       .offset = sm.offset,
                       .gmem = std::move(sm.gmem),
                       .shared = std::move(sm.shared),
                       .shared_offset = sm.shared_offset};
        r.file_identity = {id->identity.dev, id->identity.ino};
        r.shared_identity = {shared->identity.dev, shared->identity.ino};
        // The previous instance's view died with it (the pages it pinned stay pinned by
        // iommufd); a new one serves the maps to come. Nothing is re-mapped.
        if (vm_->model == MemoryModel::InPlace && !vm_->gmem_map_file.value_or(false)) {
            auto view = kernel::mapGuestMemfd(sys_, r.gmem.get(), r.offset, r.size);
            if (!view) {
                report.notes.push_back("memory region " + std::to_string(sm.id) +
                                       ": no view of its guest_memfd: " + view.error().message);
            } else {
                r.view = std::move(*view);
            }
        }
        // Pages the snapshot names no state for are shared, as a region with no runs is.
        r.states = PageStates(r.gpa, r.size, PageState{});
        for (const auto& run : sm.runs) {
            if (!r.states.holds(run.start, run.end)) {
                report.notes.push_back("memory region " + std::to_string(sm.id) + ": ignored a state for [" +
                                       std::to_string(run.start) + ", " + std::to_string(run.end) +
                                       "): not whole pages of the region");
                continue;
            }
            r.states.assign(run.start, run.end, run.value);
        }
        for (const auto& run : r.states.all()) r.count(run.value, run.end - run.start, true);
        if (auto added = objects_.add({ObjectKind::Memory, r.id}, 0, holdsOf(r)); !added) {
            return std::unexpected(added.error());
        }
        memory_by_gpa_.emplace(r.gpa, r.id);
        memory_.emplace(r.id, std::move(r));
    }

    // The journal since the snapshot, in order: what failed was rolled back; what
    // finished is redone in the record; what a crash interrupted is carried through.
    for (const JournaledIntent& e : journal) {
        if (e.outcome == JournaledIntent::Outcome::Aborted) continue;
        const bool finished = e.outcome == JournaledIntent::Outcome::Done;
        replay(e.intent, finished, report);
        if (!finished && observer_ != nullptr) observer_->outcome(e.seq, true);
    }
    // What a failed undo left before the restart is closed again before anything else.
    uncertain_ = std::move(image.uncertain);
    if (auto r = closeUncertain(); !r) report.notes.push_back(r.error().message);

    image = GuestImage{};  // what the guest did not take: closing it releases it in the kernel
    scrubUnaccountedObjects(report);
    changed();
    return report;
}

}  // namespace tio::core
