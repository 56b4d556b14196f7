// Guest: the VM, guest memory, teardown and the read model. Device, vIOMMU, vDEVICE
// and TDI operations are in guest_devices.cpp.
#include "core/guest.hpp"

#include <cerrno>
#include <sstream>

#include "common/checked_math.hpp"
#include "core/rollback.hpp"

namespace tio::core {

namespace {

// KVM_USER_MEM_SLOTS on x86 (include/linux/kvm_host.h: 32767).
constexpr std::uint32_t kMaxMemslots = 32767;
// ARM CCA: the top IPA bit selects the shared (unprotected) alias; a 48-bit IPA is
// the common realm configuration (kernel-uapi.md 5.3; exact width per realm).
constexpr std::uint64_t kCcaSharedAliasBit = 1ULL << 47U;

// Where the IOMMU maps a page in `state` (architecture.md section 6): TDX reaches
// private memory only through the S-EPT-backed secure path, SNP maps both at their
// GPAs and lets the RMP arbitrate, CCA maps shared pages at their shared alias only.
std::optional<std::uint64_t> iommuAddress(Platform p, MemoryState state, std::uint64_t gpa) {
    if (state == MemoryState::Shared) return p == Platform::Cca ? gpa | kCcaSharedAliasBit : gpa;
    if (p == Platform::Snp) return gpa;
    return std::nullopt;
}

}  // namespace

std::optional<kernel::VmType> parseVmType(std::string_view s) {
    if (s == "default") return kernel::VmType::Default;
    if (s == "sw-protected") return kernel::VmType::SwProtected;
    if (s == "snp") return kernel::VmType::Snp;
    if (s == "tdx") return kernel::VmType::Tdx;
    if (s == "sim") return kernel::VmType::Sim;
    return std::nullopt;
}

std::string_view toString(kernel::VmType t) {
    switch (t) {
        case kernel::VmType::Default: return "default";
        case kernel::VmType::SwProtected: return "sw-protected";
        case kernel::VmType::Snp: return "snp";
        case kernel::VmType::Tdx: return "tdx";
        case kernel::VmType::Sim: return "sim";
    }
    return "default";
}

Guest::Guest(GuestConfig config, kernel::Syscalls& sys) : config_(std::move(config)), sys_(sys) {}

Guest::~Guest() { (void)teardown(); }

Result<> Guest::requireVm(std::string_view step) const {
    if (state_ == GuestState::TearingDown) return fail(Code::ShuttingDown, "the guest is tearing down");
    if (!vm_) return fail(Code::InvalidState, std::string(step) + " needs a VM (CreateVm or AttachVm first)");
    return {};
}

Result<> Guest::adoptVm(kernel::KvmVm vm, kernel::VmType type) {
    if (!permitted(kGuestTransitions, state_, GuestState::Active)) {
        return fail(Code::InvalidState, whatFirst(state_, GuestState::Active));
    }
    // The iommufd context and IOAS live as long as the VM: memory is mapped into the
    // IOAS as it is added, before any device exists.
    auto iommufd = kernel::Iommufd::open(sys_);
    if (!iommufd) return std::unexpected(iommufd.error());
    auto features = kernel::probeFeatures(sys_, *iommufd);
    if (!features) return std::unexpected(features.error());
    auto ioas = iommufd->allocIoas();
    if (!ioas) return std::unexpected(ioas.error());
    auto attrs = vm.supportsPrivateAttribute();
    if (!attrs) return std::unexpected(attrs.error());  // closing the iommufd drops the IOAS
    vm_.emplace(VmContext{.vm = std::move(vm),
                          .type = type,
                          .iommufd = std::move(*iommufd),
                          .features = *features,
                          .ioas = *ioas,
                          .has_memory_attributes = *attrs});
    return transition(kGuestTransitions, state_, GuestState::Active);
}

Result<UniqueFd> Guest::createVm(kernel::VmType type) {
    if (vm_) return fail(Code::InvalidState, whatFirst(state_, GuestState::Active));
    auto kvm = kernel::Kvm::open(sys_);
    if (!kvm) return std::unexpected(kvm.error());
    auto vm = kvm->createVm(type);
    if (!vm) return std::unexpected(vm.error());
    auto copy = vm->duplicateFd();
    if (!copy) return std::unexpected(copy.error());
    if (auto r = adoptVm(std::move(*vm), type); !r) return std::unexpected(r.error());
    return std::move(*copy);
}

Result<> Guest::attachVm(UniqueFd vm_fd, kernel::VmType type) {
    if (vm_) return fail(Code::InvalidState, whatFirst(state_, GuestState::Active));
    auto vm = kernel::KvmVm::adopt(sys_, std::move(vm_fd));
    if (!vm) return std::unexpected(vm.error());
    return adoptVm(std::move(*vm), type);
}

Result<UniqueFd> Guest::createGuestMemory(std::uint64_t size, kernel::GuestMemfdFlags flags) {
    if (auto r = requireVm("CreateGuestMemory"); !r) return std::unexpected(r.error());
    if (size == 0 || !pageAligned(size)) return fail(Code::InvalidArgument, "size must be a non-zero multiple of 4 KiB");
    auto supported = vm_->vm.supportedGuestMemfdFlags();
    if (!supported) return std::unexpected(supported.error());
    if ((flags.mmap && !supported->mmap) || (flags.init_shared && !supported->init_shared)) {
        return fail(Code::NotSupported, "guest_memfd flags not offered for this VM type");
    }
    auto gmem = vm_->vm.createGuestMemfd(size, flags);
    if (!gmem) return std::unexpected(gmem.error());
    return gmem->duplicateFd();
}

Result<ObjectId> Guest::addMemory(std::uint64_t gpa, std::uint64_t size, UniqueFd gmem, std::uint64_t offset,
                                  MemoryState initial) {
    if (auto r = requireVm("AddMemory"); !r) return std::unexpected(r.error());
    const auto end = checkedEnd(gpa, size);
    if (size == 0 || !end || !pageAligned(gpa) || !pageAligned(size) || !pageAligned(offset) ||
        !checkedEnd(offset, size)) {
        return fail(Code::InvalidArgument, "gpa, size and offset must be 4 KiB aligned, size non-zero, no overflow");
    }
    for (const auto& [id, r] : memory_) {
        if (gpa < r.gpa + r.size && r.gpa < *end) {
            return fail(Code::InvalidArgument, "the range overlaps memory region " + std::to_string(id));
        }
    }
    if (next_memslot_ >= kMaxMemslots) return fail(Code::LimitExceeded, "no KVM memslot left");
    const std::uint32_t slot = next_memslot_;
    Rollback undo;
    // The kernel is the judge of the fd: binding it to a memslot of this VM only
    // succeeds for a guest_memfd of this VM with offset+size inside it.
    if (auto r = vm_->vm.setMemslot(slot, gpa, size, gmem.get(), offset); !r) {
        if (r.error().sys_errno == EINVAL || r.error().sys_errno == EBADF) {
            return fail(Code::InvalidArgument, "the fd is not a guest_memfd of this guest's VM, or offset+size is beyond it");
        }
        if (r.error().sys_errno == EEXIST) {
            return fail(Code::InvalidArgument, "that guest_memfd range is already guest memory");
        }
        return std::unexpected(r.error());
    }
    undo.add([&] { (void)vm_->vm.deleteMemslot(slot); });
    if (initial == MemoryState::Private && vm_->has_memory_attributes) {
        if (auto r = vm_->vm.setMemoryAttributes(gpa, size, true); !r) return std::unexpected(r.error());
        undo.add([&] { (void)vm_->vm.setMemoryAttributes(gpa, size, false); });
    }
    const auto iova = iommuAddress(config_.platform, initial, gpa);
    if (iova && !vm_->features.map_file) {
        return fail(Code::NotSupported, "this kernel's iommufd cannot map files (IOMMU_IOAS_MAP_FILE)");
    }
    if (iova) {
        if (auto r = vm_->iommufd.mapFile(vm_->ioas, gmem.get(), offset, size, *iova, true); !r) {
            return std::unexpected(r.error());
        }
    }
    undo.commit();
    ++next_memslot_;
    const ObjectId id = next_id_++;
    memory_.emplace(id, MemoryRegion{.id = id,
                                     .gpa = gpa,
                                     .size = size,
                                     .offset = offset,
                                     .gmem = std::move(gmem),
                                     .memslot = slot,
                                     .state = initial,
                                     .iova = iova});
    return id;
}

Result<> Guest::removeMemory(ObjectId region) {
    if (auto r = requireVm("RemoveMemory"); !r) return std::unexpected(r.error());
    auto it = memory_.find(region);
    if (it == memory_.end()) return fail(Code::NotFound, "no such memory region");
    MemoryRegion& m = it->second;
    // Unmap first: nothing may DMA into memory KVM no longer backs.
    if (m.iova) {
        if (auto r = vm_->iommufd.unmap(vm_->ioas, *m.iova, m.size); !r) return std::unexpected(r.error());
    }
    if (auto r = vm_->vm.deleteMemslot(m.memslot); !r) {
        if (m.iova) (void)vm_->iommufd.mapFile(vm_->ioas, m.gmem.get(), m.offset, m.size, *m.iova, true);
        return std::unexpected(r.error());
    }
    memory_.erase(it);
    return {};
}

std::vector<Error> Guest::teardown() {
    std::vector<Error> errors;
    auto note = [&](Result<> r) {
        if (!r) errors.push_back(r.error());
    };
    if (state_ == GuestState::Empty && !vm_) return errors;
    state_ = GuestState::TearingDown;
    // Leaf-first, the reverse of bring-up (kernel-uapi.md 1.5 and section 7):
    // TDIs, vDEVICEs, vIOMMUs, device attachments, the page table, memory, the IOAS,
    // then the fds. A failed step is recorded and stepped over.
    if (vm_) {
        for (auto& [id, d] : devices_) {
            if (d.vdevice && d.tdi != TdiState::Unlocked && d.tdi != TdiState::Unsupported) {
                note(vm_->iommufd.tsmUnbind(d.vdevice->kernel_id));
                d.tdi = TdiState::Unlocked;
            }
            if (d.vdevice) {
                note(vm_->iommufd.destroy(d.vdevice->kernel_id));
                d.vdevice.reset();
            }
        }
        for (auto& [id, v] : viommus_) note(vm_->iommufd.destroy(v.kernel_id));
        viommus_.clear();
        for (auto& [id, d] : devices_) {
            if (d.attached) note(d.vfio.detach());
            if (vm_->kvm_vfio) note(vm_->kvm_vfio->removeFile(d.vfio.fd()));
        }
        devices_.clear();  // closes the device fds (unbind) and releases the claims
        if (vm_->hwpt != 0) note(vm_->iommufd.destroy(vm_->hwpt));
        for (auto& [id, m] : memory_) {
            if (m.iova) {
                if (auto r = vm_->iommufd.unmap(vm_->ioas, *m.iova, m.size); !r) errors.push_back(r.error());
            }
            note(vm_->vm.deleteMemslot(m.memslot));
        }
        memory_.clear();
        note(vm_->iommufd.destroy(vm_->ioas));
        vm_.reset();  // KVM-VFIO device, iommufd, VM: members close in reverse order, the VM last
    }
    next_memslot_ = 0;
    state_ = GuestState::Empty;
    return errors;
}

std::optional<ObjectId> Guest::findDevice(const Bdf& bdf) const {
    for (const auto& [id, d] : devices_)
        if (d.bdf == bdf) return id;
    return std::nullopt;
}

std::string Guest::describe() const {
    std::ostringstream o;
    o << "state=" << toString(state_);
    if (vm_) o << " vm=" << toString(vm_->type) << " ioas=" << vm_->ioas << " hwpt=" << vm_->hwpt
               << " hwpt_pins=" << vm_->hwpt_pins << " kvm_vfio=" << vm_->kvm_vfio.has_value();
    for (const auto& [id, d] : devices_) {
        o << " dev" << id << "{" << d.bdf.toString() << " devid=" << d.dev_id << " attached=" << d.attached
          << " tdi=" << toString(d.tdi) << " tsm=" << d.tsm_connected;
        if (d.vdevice) o << " vdev=" << d.vdevice->kernel_id << "@" << d.vdevice->viommu << "/" << d.vdevice->virtual_id;
        o << "}";
    }
    for (const auto& [id, v] : viommus_) o << " viommu" << id << "{" << v.kernel_id << " pins=" << v.pins << "}";
    for (const auto& [id, m] : memory_) {
        o << " mem" << id << "{" << m.gpa << "+" << m.size << " " << toString(m.state) << " slot=" << m.memslot << "}";
    }
    return o.str();
}

}  // namespace tio::core
