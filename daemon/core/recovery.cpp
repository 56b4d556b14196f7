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

// How far above the largest known iommufd id to look for objects a crash left
// behind: one interrupted call allocates at most a few (HWPT, vIOMMU, vDEVICE).
constexpr std::uint32_t kScrubMargin = 32;

UniqueFd take(std::map<std::string, UniqueFd>& fds, const std::string& name) {
    auto it = fds.find(name);
    if (it == fds.end()) return {};
    UniqueFd fd = std::move(it->second);
    fds.erase(it);
    return fd;
}

std::string name(std::string_view kind, ObjectId id) { return std::string(kind) + "-" + std::to_string(id); }

}  // namespace

std::vector<NamedFd> Guest::ownedFds() const {
    std::vector<NamedFd> out;
    if (!vm_) return out;
    out.push_back({"vm", vm_->vm.fd()});
    out.push_back({"iommufd", vm_->iommufd.fd()});
    if (vm_->kvm_vfio) out.push_back({"kvm-vfio", vm_->kvm_vfio->fd()});
    for (const auto& [id, d] : devices_) {
        out.push_back({name("dev", id), d.vfio.fd()});
        out.push_back({name("claim", id), d.claim.fd()});
    }
    for (const auto& [id, m] : memory_) {
        const std::string n = memoryFdName(id);
        if (n == name("mem", id)) out.push_back({n, m.gmem.get()});
    }
    return out;
}

std::string Guest::memoryFdName(ObjectId id) const {
    // Same file, same name (the identity was taken from the kernel when the fd came in).
    const auto& mine = memory_.at(id).file_identity;
    for (const auto& [other, m] : memory_) {
        if (other >= id) break;
        if (m.file_identity == mine) return name("mem", other);
    }
    return name("mem", id);
}

void Guest::dropMemoryKernelState(std::uint64_t gpa, std::uint64_t size, std::uint32_t memslot) {
    // Everything any state could have mapped there, at either alias; ENOENT is fine.
    for (std::uint64_t bit : {std::uint64_t{0}, kSharedAliasBit}) {
        (void)vm_->iommufd.unmap(ioasId(), gpa | bit, size);
        if (usesPageSizeLimits(config_.platform)) (void)vm_->iommufd.limitPageSize(ioasId(), gpa | bit, size, 0);
    }
    if (vm_->has_memory_attributes) (void)vm_->vm.setMemoryAttributes(gpa, size, false);
    (void)vm_->vm.deleteMemslot(memslot);
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
    std::vector<std::pair<MemoryRegion*, std::vector<RangeMap<PageState>::Run>>> targets;
    for (const auto& [key, end] : windows) {
        MemoryRegion& r = memory_.at(key.first);
        targets.emplace_back(&r, r.states.runs(key.second, end));
    }
    Rollback forward;  // forward only
    forward.commit();
    for (const auto& [key, end] : windows) {
        const std::uint64_t start = key.second;
        for (std::uint64_t bit : {std::uint64_t{0}, kSharedAliasBit}) {
            (void)vm_->iommufd.splitArea(ioasId(), start | bit);
            (void)vm_->iommufd.splitArea(ioasId(), end | bit);
            (void)vm_->iommufd.unmap(ioasId(), start | bit, end - start);
        }
    }
    for (auto& [r, runs] : targets) {
        for (const auto& run : runs) {
            recordChange(*r, Change{.start = run.start, .end = run.end, .attr = run.value.attr, .revoked = true},
                         forward);
            if (vm_->has_memory_attributes) {
                (void)vm_->vm.setMemoryAttributes(run.start, run.end - run.start, run.value.attr == MemoryState::Private);
            }
        }
    }
    for (auto& [r, runs] : targets) {
        for (const auto& run : runs) {
            if (run.value.revoked) continue;
            auto done = applyChange(*r, Change{.start = run.start, .end = run.end, .attr = run.value.attr, .revoked = false},
                                    forward);
            if (!done) report.notes.push_back("repairing an interrupted change failed: " + done.error().message);
        }
    }
}

void Guest::replay(const v1::MemoryIntent& intent, bool finished, RestoreReport& report) {
    Rollback forward;  // replay and recovery go forward only
    forward.commit();
    // The record first (what the call meant), then, if it did not finish, the kernel.
    std::vector<std::pair<std::uint64_t, std::uint64_t>> touched;
    for (const auto& r : intent.ranges()) touched.emplace_back(r.gpa(), r.size());
    switch (intent.kind()) {
        case v1::MemoryIntent::CONVERT: {
            std::vector<MemoryConversion> ranges;
            for (const auto& r : intent.ranges()) {
                ranges.push_back({r.gpa(), r.size(), parseMemoryState(r.to()).value_or(MemoryState::Private)});
            }
            if (auto r = convertRanges(ranges, forward, ApplyMode::ModelOnly); !r) {
                report.notes.push_back("replaying a conversion failed: " + r.error().message);
                break;
            }
            if (!finished) repairWindows(touched, report);
            if (!finished) report.notes.push_back("finished a conversion of " + std::to_string(ranges.size()) + " ranges");
            break;
        }
        case v1::MemoryIntent::PUNCH:
            for (const auto& r : intent.ranges()) {
                if (auto done = revokeRange(r.gpa(), r.size(), forward, ApplyMode::ModelOnly); !done) {
                    report.notes.push_back("replaying a hole punch failed: " + done.error().message);
                    continue;
                }
                if (finished) continue;
                repairWindows({{r.gpa(), r.size()}}, report);
                // Punching twice frees nothing twice.
                if (auto slices = slicesOf(r.gpa(), r.size())) {
                    for (const RegionSlice& s : *slices) {
                        (void)kernel::punchGuestMemfd(sys_, s.region->gmem.get(), s.region->fileOffset(s.start),
                                                      s.end - s.start);
                    }
                }
                report.notes.push_back("finished a hole punch");
            }
            break;
        case v1::MemoryIntent::ADD:
            // A region the snapshot does not hold has no stored fd: undo the addition.
            if (!memory_.contains(intent.region_id())) {
                dropMemoryKernelState(intent.gpa(), intent.size(), intent.memslot());
                report.notes.push_back(finished ? "dropped a region added after the snapshot (its fd was not kept)"
                                                : "undid an interrupted AddMemory");
            }
            next_memslot_ = std::max(next_memslot_, intent.memslot() + 1);
            next_id_ = std::max(next_id_, intent.region_id() + 1);
            break;
        case v1::MemoryIntent::REMOVE: {
            const ObjectKey key{ObjectKind::Memory, intent.region_id()};
            if (!objects_.erase(key)) break;  // not there (or, impossibly, held)
            (void)destroyObject(key, 0);
            if (!finished) report.notes.push_back("finished an interrupted RemoveMemory");
            break;
        }
        default: break;
    }
}

void Guest::scrubUnaccountedObjects(RestoreReport& report) {
    // What the table accounts for stays; anything else a crash left behind goes.
    const std::set<std::uint32_t> known = objects_.kernelIds();
    const std::uint32_t top = *known.rbegin() + kScrubMargin;
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

Result<RestoreReport> Guest::restore(const v1::GuestSnapshot& s, const std::vector<v1::JournalEntry>& journal,
                                     std::map<std::string, UniqueFd>& fds) {
    RestoreReport report;
    if (vm_ || state_ != GuestState::Empty) return fail(Code::InvalidState, "restore needs an empty guest");
    if (s.state() != "active") return report;  // nothing was running
    const auto type = parseVmType(s.vm_type());
    if (!type) return fail(Code::InvalidArgument, "the snapshot names an unknown VM type");

    // The VM, the iommufd with its IOAS, the KVM-VFIO device: the kernel vouches for each.
    auto vm = kernel::KvmVm::adopt(sys_, take(fds, "vm"));
    if (!vm) return std::unexpected(vm.error());
    auto iommufd = kernel::Iommufd::adopt(sys_, take(fds, "iommufd"), s.ioas_id());
    if (!iommufd) return std::unexpected(iommufd.error());
    auto features = kernel::probeFeatures(sys_, *iommufd);
    if (!features) return std::unexpected(features.error());
    auto attrs = vm->supportsPrivateAttribute();
    if (!attrs) return std::unexpected(attrs.error());
    std::optional<kernel::KvmVfioDevice> kvm_vfio;
    if (s.has_kvm_vfio()) {
        auto kv = kernel::KvmVfioDevice::adopt(sys_, take(fds, "kvm-vfio"));
        if (!kv) return std::unexpected(kv.error());
        kvm_vfio.emplace(std::move(*kv));
    }
    // The table is rebuilt object by object with the same holds the live calls give
    // (holdsOf), so the pins follow; nothing is counted here.
    if (auto r = objects_.add(kIoasKey, s.ioas_id()); !r) return std::unexpected(r.error());
    if (s.hwpt_id() != 0) {
        if (auto r = objects_.add(kHwptKey, s.hwpt_id(), {kIoasKey}); !r) return std::unexpected(r.error());
    }
    if (kvm_vfio) {
        if (auto r = objects_.add(kKvmVfioKey, 0); !r) return std::unexpected(r.error());
    }
    vm_.emplace(VmContext{.vm = std::move(*vm),
                          .type = *type,
                          .iommufd = std::move(*iommufd),
                          .features = *features,
                          .kvm_vfio = std::move(kvm_vfio),
                          .has_memory_attributes = *attrs});
    report.notes.push_back("guest " + force(state_, GuestState::Active, "re-adopted from the snapshot"));
    next_id_ = std::max<ObjectId>(s.next_object_id(), 1);
    next_memslot_ = s.next_memslot();
    conversions_ = s.conversions();
    revocations_ = s.revocations();

    for (const auto& sv : s.viommus()) {
        const VIommu v{.id = sv.id(), .kernel_id = sv.kernel_id(), .type = sv.type_id()};
        if (!objects_.contains(kHwptKey) || !objects_.add({ObjectKind::VIommu, v.id}, v.kernel_id, holdsOf(v))) {
            report.notes.push_back("dropped vIOMMU " + std::to_string(v.id) + ": its page table is gone");
            continue;
        }
        viommus_.emplace(v.id, v);
    }
    kernel::PciSysfs sysfs(sys_);
    for (const auto& sd : s.devices()) {
        const auto bdf = Bdf::parse(sd.bdf());
        auto cdev = bdf ? sysfs.vfioCdev(*bdf) : Result<kernel::VfioCdev>(fail(Code::NotFound, "bad BDF"));
        UniqueFd dev_fd = take(fds, name("dev", sd.id()));
        UniqueFd claim_fd = take(fds, name("claim", sd.id()));
        if (!cdev || !dev_fd || !claim_fd) {
            report.notes.push_back("dropped device " + sd.bdf() + ": its fds were not kept");
            continue;  // closing whatever fd there was unbinds it
        }
        auto vfio = kernel::VfioDevice::adopt(sys_, std::move(dev_fd), cdev->rdev);
        auto claim = kernel::DeviceClaim::adopt(std::move(claim_fd));
        if (!vfio || !claim) {
            report.notes.push_back("dropped device " + sd.bdf() + ": " +
                                   (!vfio ? vfio.error().message : claim.error().message));
            continue;
        }
        const auto tdi = parseTdiState(sd.tdi_state());
        Device d{.id = sd.id(),
                 .bdf = *bdf,
                 .vfio_name = sd.vfio_device(),
                 .claim = std::move(*claim),
                 .vfio = std::move(*vfio),
                 .dev_id = sd.dev_id(),
                 .tdisp_capable = sd.tdi_state() != "unsupported",
                 .tsm_connected = sd.tsm_connected()};
        if (sd.attached()) {
            report.notes.push_back(bdf->toString() + " " + force(d.state, DeviceState::Attached, "from the snapshot"));
        }
        if (auto r = objects_.add({ObjectKind::Device, d.id}, d.dev_id, holdsOf(d)); !r) {
            report.notes.push_back("dropped device " + sd.bdf() + ": " + r.error().message);
            continue;
        }
        if (sd.has_vdevice()) {
            const VDevice v{sd.vdevice_id(), sd.viommu(), sd.virtual_id()};
            if (objects_.add({ObjectKind::VDevice, d.id}, v.kernel_id, holdsOf(d, v))) d.vdevice = v;
            else report.notes.push_back("dropped the vDEVICE of " + sd.bdf() + ": its vIOMMU is gone");
        }
        // The TDI's state is the device's, not the snapshot's: ask it, else trust the snapshot.
        TdiState now = tdi.value_or(TdiState::Unlocked);
        if (d.vdevice && d.tdisp_capable && vm_->features.tsm_request) {
            if (auto st = vm_->iommufd.tdiState(d.vdevice->kernel_id)) now = toTdiState(*st);
        }
        if (auto line = force(d.tdi, now, "as the device reports it"); !line.empty()) {
            report.notes.push_back("TDI of " + sd.bdf() + ": " + line);
        }
        devices_.emplace(d.id, std::move(d));
    }

    std::map<std::string, const UniqueFd*> shared_files;  // a kept guest_memfd already taken, for the next region on it
    for (const auto& sm : s.memory()) {
        const std::string fd_name = sm.fd_name().empty() ? name("mem", sm.id()) : sm.fd_name();
        UniqueFd gmem = take(fds, fd_name);
        if (!gmem && shared_files.contains(fd_name)) {
            if (auto copy = shared_files.at(fd_name)->duplicate()) gmem = std::move(*copy);
        }
        auto id = gmem ? kernel::guestMemfdIdentity(sys_, gmem.get())
                       : Result<kernel::FileIdentity>(fail(Code::NotFound, "not kept"));
        if (!id) {
            dropMemoryKernelState(sm.gpa(), sm.size(), sm.memslot());
            report.notes.push_back("dropped memory region " + std::to_string(sm.id()) + ": its guest_memfd was not kept");
            continue;
        }
        MemoryRegion r{.id = sm.id(),
                       .gpa = sm.gpa(),
                       .size = sm.size(),
                       .offset = sm.offset(),
                       .gmem = std::move(gmem),
                       .memslot = sm.memslot()};
        r.file_identity = {id->dev, id->ino};
        for (const auto& range : sm.ranges()) {
            const PageState st{parseMemoryState(range.state()).value_or(MemoryState::Shared), range.revoked()};
            r.states.assign(range.gpa(), range.gpa() + range.size(), st);
            if (st.attr == MemoryState::Private) r.private_bytes += range.size();
            if (st.revoked) r.revoked_bytes += range.size();
        }
        if (r.states.fragments() == 0) r.states.assign(r.gpa, r.end(), PageState{});
        if (auto added = objects_.add({ObjectKind::Memory, r.id}, 0, holdsOf(r)); !added) {
            return std::unexpected(added.error());
        }
        memory_by_gpa_.emplace(r.gpa, r.id);
        auto [it, inserted] = memory_.emplace(r.id, std::move(r));
        if (!fd_name.empty() && !shared_files.contains(fd_name)) shared_files.emplace(fd_name, &it->second.gmem);
    }

    // The journal since the snapshot: outcomes first, then every intent in order.
    std::map<std::uint64_t, bool> outcomes;  // seq -> done
    for (const auto& e : journal) {
        if (e.seq() <= s.journal_seq() && e.has_intent()) continue;
        if (e.has_done()) outcomes[e.done()] = true;
        if (e.has_aborted()) outcomes[e.aborted()] = false;
    }
    for (const auto& e : journal) {
        if (!e.has_intent() || e.seq() <= s.journal_seq()) continue;
        auto it = outcomes.find(e.seq());
        if (it != outcomes.end() && !it->second) continue;  // failed and rolled back
        replay(e.intent(), it != outcomes.end(), report);
        if (it == outcomes.end() && observer_ != nullptr) observer_->outcome(e.seq(), true);
    }

    fds.clear();  // what the guest did not take: closing it releases it in the kernel
    scrubUnaccountedObjects(report);
    changed();
    return report;
}

}  // namespace tio::core
