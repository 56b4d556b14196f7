// Guest: the VM, teardown and the read model. Guest memory and conversions are in
// guest_memory.cpp; device, vIOMMU, vDEVICE and TDI operations in guest_devices.cpp.
#include "core/guest.hpp"

#include <cerrno>
#include <sstream>

#include "common/checked_math.hpp"
#include "core/rollback.hpp"

namespace tio::core {

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
        // One unmap of everything: the areas may be many small ones after conversions.
        if (!memory_.empty()) {
            if (auto r = vm_->iommufd.unmap(vm_->ioas, 0, UINT64_MAX); !r && r.error().sys_errno != ENOENT) {
                errors.push_back(r.error());
            }
        }
        for (auto& [id, m] : memory_) note(vm_->vm.deleteMemslot(m.memslot));
        memory_.clear();
        memory_by_gpa_.clear();
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
    o << "state=" << toString(state_) << " conversions=" << conversions_ << " revocations=" << revocations_;
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
        o << " mem" << id << "{" << m.gpa << "+" << m.size << " slot=" << m.memslot << " private=" << m.private_bytes
          << " revoked=" << m.revoked_bytes << " runs=";
        for (const auto& run : m.states.all()) {
            o << run.start << "-" << run.end << ":" << toString(run.value.attr) << (run.value.revoked ? "/r" : "") << ",";
        }
        o << "}";
    }
    return o.str();
}

}  // namespace tio::core
