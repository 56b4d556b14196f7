// Guest: the VM and its iommufd context. The VMM creates the VM and keeps driving it
// (kernel-as-it-is.md section 1: it answers only its creator); the daemon holds a
// duplicate for the guest's life, its identity and the fd store, and never issues an
// ioctl on it. Attaching the VM makes the guest active; the IOAS is created with it
// and lives as long as it, so memory can be mapped as it is added, before any device.
#include "core/guest.hpp"

namespace tio::core {
namespace {

// The VM types a guest of each platform may have: its own confidential type, and the
// non-confidential ones hosts use for bring-up and tests. Arm has no x86 types.
bool typeFitsPlatform(Platform p, kernel::VmType t) {
    switch (t) {
        case kernel::VmType::Default: return true;
        case kernel::VmType::SwProtected: return p != Platform::Cca;
        case kernel::VmType::Snp: return p == Platform::Snp;
        case kernel::VmType::Tdx: return p == Platform::Tdx;
    }
    return false;
}

}  // namespace

Result<UniqueFd> Guest::createVm(Who) {
    return fail(Code::NotSupported,
                "a KVM VM answers only the process that created it: create it in the VMM and AttachVm it");
}

Result<UniqueFd> Guest::createGuestMemory(Who) {
    return fail(Code::NotSupported,
                "creating a guest_memfd is a VM ioctl, which only the VM's creator may issue: create it in the VMM "
                "and pass it to AddMemory");
}

Result<> Guest::attachVm(Who, UniqueFd vm_fd, kernel::VmType type) {
    if (auto r = check(kGuestTransitions, state_, GuestState::Active); !r) return r;
    if (!typeFitsPlatform(config_.platform, type)) {
        return fail(Code::InvalidArgument, "VM type " + std::string(toString(type)) + " does not fit a " +
                                               std::string(toString(config_.platform)) + " guest");
    }
    auto vm = kernel::KvmVm::adopt(sys_, std::move(vm_fd));
    if (!vm) return std::unexpected(vm.error());
    // A VM is one guest's, as a device is: not one another guest's daemon holds.
    auto claim = host::VmClaim::acquire(config_.claim_dir, config_.name, vm->fd());
    if (!claim) return std::unexpected(claim.error());
    // /dev/kvm answers anyone: whether this host offers the type the VMM claims.
    auto kvm = kernel::KvmSystem::open(sys_);
    if (!kvm) return std::unexpected(kvm.error());
    auto offered = kvm->offersVmType(type);
    if (!offered) return std::unexpected(offered.error());
    if (!*offered) {
        return fail(Code::NotSupported, "this host's KVM offers no " + std::string(toString(type)) + " VMs");
    }
    auto in_place = kernel::kernelConvertsInPlace(sys_);
    if (!in_place) return std::unexpected(in_place.error());
    auto iommufd = kernel::Iommufd::open(sys_);
    if (!iommufd) return std::unexpected(iommufd.error());
    auto features = kernel::probeFeatures(sys_, *iommufd);
    if (!features) return std::unexpected(features.error());
    auto ioas = iommufd->allocIoas();
    if (!ioas) return std::unexpected(ioas.error());  // closing the iommufd drops the IOAS
    if (auto r = objects_.add(kIoasKey, *ioas); !r) return r;
    vm_.emplace(VmContext{.vm = std::move(*vm),
                          .type = type,
                          .model = *in_place ? MemoryModel::InPlace : MemoryModel::Separate,
                          .iommufd = std::move(*iommufd),
                          .features = *features,
                          .gmem_map_file = std::nullopt,
                          .claim = std::move(*claim)});
    if (auto r = transition(kGuestTransitions, state_, GuestState::Active); !r) return r;
    changed();
    return {};
}

Result<> Guest::probeGuestMemfdMapping(int gmem, std::uint64_t offset) {
    if (vm_->gmem_map_file) return {};
    if (!vm_->features.map_file) {
        vm_->gmem_map_file = false;
        return {};
    }
    auto by_file = kernel::probeGuestMemfdMapping(vm_->iommufd, gmem, offset);
    if (!by_file) return std::unexpected(by_file.error());
    vm_->gmem_map_file = *by_file;
    return {};
}

MappingRules Guest::mappingRules(const MemoryRegion& r) const {
    if (!vm_) return {.platform = config_.platform, .shared_dma = false, .private_dma = false};
    const bool page_areas = !vm_->features.reshape;
    if (vm_->model == MemoryModel::Separate) {
        // Shared pages are the memfd's, when the VMM gave it. Private ones stay out of
        // the IOMMU: next to memfd areas at the same alias (SNP) they could never be
        // one area, and no kernel maps guest_memfd by file without converting in place.
        return {.platform = config_.platform,
                .shared_dma = r.shared.valid() && vm_->features.map_file,
                .private_dma = false,
                .page_areas = page_areas};
    }
    // In place: the guest_memfd by file, or else by address through the daemon's view.
    const bool by_file = vm_->gmem_map_file.value_or(false);
    return {.platform = config_.platform,
            .shared_dma = by_file || static_cast<bool>(r.view),
            .private_dma = by_file,
            .page_areas = page_areas};
}

std::uint64_t Guest::mappedBytes(const MemoryRegion& r) const {
    // From the region's byte counts, never by walking its runs: the views read this
    // after every change, and a fragmented guest has many runs. What is mapped
    // depends only on a page's attribute and whether it is revoked.
    const MappingRules rules = mappingRules(r);
    const std::uint64_t live_private = r.private_bytes - r.revoked_private_bytes;
    const std::uint64_t live_shared = (r.size - r.private_bytes) - (r.revoked_bytes - r.revoked_private_bytes);
    std::uint64_t bytes = 0;
    if (iommuView(rules, PageState{.attr = MemoryState::Shared}).mapped) bytes += live_shared;
    if (iommuView(rules, PageState{.attr = MemoryState::Private}).mapped) bytes += live_private;
    return bytes;
}

}  // namespace tio::core
