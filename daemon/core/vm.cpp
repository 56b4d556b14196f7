// Guest: the VM and its iommufd context. The VM makes the guest active; the IOAS
// is created with it and lives as long as it, so memory can be mapped as it is
// added, before any device exists.
#include "common/checked_math.hpp"
#include "core/guest.hpp"

namespace tio::core {

Result<> Guest::adoptVm(kernel::KvmVm vm, kernel::VmType type) {
    if (auto r = check(kGuestTransitions, state_, GuestState::Active); !r) return r;
    auto iommufd = kernel::Iommufd::open(sys_);
    if (!iommufd) return std::unexpected(iommufd.error());
    auto features = kernel::probeFeatures(sys_, *iommufd);
    if (!features) return std::unexpected(features.error());
    auto ioas = iommufd->allocIoas();
    if (!ioas) return std::unexpected(ioas.error());
    auto attrs = vm.supportsPrivateAttribute();
    if (!attrs) return std::unexpected(attrs.error());  // closing the iommufd drops the IOAS
    if (auto r = objects_.add(kIoasKey, *ioas); !r) return r;
    vm_.emplace(VmContext{.vm = std::move(vm),
                          .type = type,
                          .iommufd = std::move(*iommufd),
                          .features = *features,
                          .has_memory_attributes = *attrs});
    if (auto r = transition(kGuestTransitions, state_, GuestState::Active); !r) return r;
    changed();
    return {};
}

Result<UniqueFd> Guest::createVm(Who, kernel::VmType type) {
    if (auto r = check(kGuestTransitions, state_, GuestState::Active); !r) return std::unexpected(r.error());
    auto kvm = kernel::Kvm::open(sys_);
    if (!kvm) return std::unexpected(kvm.error());
    auto vm = kvm->createVm(type);
    if (!vm) return std::unexpected(vm.error());
    auto copy = vm->duplicateFd();
    if (!copy) return std::unexpected(copy.error());
    if (auto r = adoptVm(std::move(*vm), type); !r) return std::unexpected(r.error());
    return std::move(*copy);
}

Result<> Guest::attachVm(Who, UniqueFd vm_fd, kernel::VmType type) {
    if (auto r = check(kGuestTransitions, state_, GuestState::Active); !r) return r;
    auto vm = kernel::KvmVm::adopt(sys_, std::move(vm_fd));
    if (!vm) return std::unexpected(vm.error());
    return adoptVm(std::move(*vm), type);
}

Result<UniqueFd> Guest::createGuestMemory(Who, std::uint64_t size, kernel::GuestMemfdFlags flags) {
    if (auto r = requireVm("CreateGuestMemory"); !r) return std::unexpected(r.error());
    if (size == 0 || !pageAligned(size))
        return fail(Code::InvalidArgument, "size must be a non-zero multiple of 4 KiB");
    auto supported = vm_->vm.supportedGuestMemfdFlags();
    if (!supported) return std::unexpected(supported.error());
    if ((flags.mmap && !supported->mmap) || (flags.init_shared && !supported->init_shared)) {
        return fail(Code::NotSupported, "guest_memfd flags not offered for this VM type");
    }
    auto gmem = vm_->vm.createGuestMemfd(size, flags);
    if (!gmem) return std::unexpected(gmem.error());
    return gmem->duplicateFd();
}

}  // namespace tio::core
