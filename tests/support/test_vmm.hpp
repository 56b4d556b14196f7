#pragma once
// The VMM's half of a guest, in the test's own process, as a real VMM does it
// (kernel-as-it-is.md section 1): it creates the VM, its guest_memfds and memslots
// and its KVM-VFIO device, through the simulator's /dev/kvm (or the real one), and
// hands duplicates to the daemon. Only this process may issue VM ioctls on them.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "core/guest.hpp"
#include "support/trusted_caller.hpp"
#include "vmm/kvm_vmm.hpp"

namespace tio::test {

class TestVmm {
public:
    explicit TestVmm(kernel::Syscalls& sys) : sys_(&sys) {}

    // Creates the VM on first use; a duplicate of its fd for AttachVm.
    [[nodiscard]] Result<UniqueFd> vmFd(kernel::VmType type = kernel::VmType::Default) {
        if (!vm_) {
            auto kvm = vmm::Kvm::open(*sys_);
            if (!kvm) return std::unexpected(kvm.error());
            auto vm = kvm->createVm(type);
            if (!vm) return std::unexpected(vm.error());
            vm_.emplace(std::move(*vm));
        }
        return vm_->duplicateFd();
    }
    // Creates the VM and attaches it to `g`.
    [[nodiscard]] Result<> attachTo(core::Guest& g, kernel::VmType type = kernel::VmType::Default) {
        auto fd = vmFd(type);
        if (!fd) return std::unexpected(fd.error());
        return g.attachVm(trusted(), std::move(*fd), type);
    }
    // A guest_memfd of `size` bytes, kept here; a duplicate for AddMemory.
    [[nodiscard]] Result<UniqueFd> guestMemfd(std::uint64_t size, vmm::GuestMemfdFlags flags = {}) {
        if (auto r = vmFd(); !r) return std::unexpected(r.error());
        auto gmem = vm_->createGuestMemfd(size, flags);
        if (!gmem) return std::unexpected(gmem.error());
        auto copy = gmem->duplicateFd();
        gmems_.push_back(std::move(*gmem));
        return copy;
    }
    // Binds [offset, offset+size) of `gmem` at `gpa` in the next memslot; `shared_va`
    // is where this process mapped the separate model's shared backing (0: none).
    [[nodiscard]] Result<> bindMemory(std::uint64_t gpa, std::uint64_t size, int gmem, std::uint64_t offset = 0,
                                      std::uint64_t shared_va = 0) {
        if (auto r = vmFd(); !r) return std::unexpected(r.error());
        return vm_->setMemslot(next_slot_++, gpa, size, gmem, offset, shared_va);
    }
    // A guest_memfd of `size` bytes bound at `gpa`: a duplicate for AddMemory.
    [[nodiscard]] Result<UniqueFd> guestMemory(std::uint64_t gpa, std::uint64_t size) {
        auto gmem = guestMemfd(size);
        if (!gmem) return std::unexpected(gmem.error());
        if (auto r = bindMemory(gpa, size, gmem->get()); !r) return std::unexpected(r.error());
        return gmem;
    }
    // A memfd of `size` bytes: the separate model's shared backing, as a VMM makes it.
    [[nodiscard]] static UniqueFd sharedMemory(std::uint64_t size) {
        UniqueFd fd(::memfd_create("shared", MFD_CLOEXEC | MFD_ALLOW_SEALING));
        if (fd && ::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) fd.reset();
        return fd;
    }
    // The separate model's VM-scoped attribute, which only the VM's creator may set.
    [[nodiscard]] Result<> setAttributes(std::uint64_t gpa, std::uint64_t size, bool is_private) {
        if (auto r = vmFd(); !r) return std::unexpected(r.error());
        return vm_->setMemoryAttributes(gpa, size, is_private);
    }
    // KVM_DEV_VFIO_FILE_ADD of `vfio` (the KVM-VFIO device is made on first use).
    [[nodiscard]] Result<> addVfioFile(int vfio) {
        if (auto r = vmFd(); !r) return std::unexpected(r.error());
        if (!kvm_vfio_) {
            auto dev = vm_->createVfioDevice();
            if (!dev) return std::unexpected(dev.error());
            kvm_vfio_.emplace(std::move(*dev));
        }
        return kvm_vfio_->addFile(vfio);
    }
    // What a VMM does between AddDevice and Device.Attach: GetVfioFd, FILE_ADD.
    [[nodiscard]] Result<> addDeviceFile(core::Guest& g, core::ObjectId device) {
        auto fd = g.vfioFd(trusted(), device);
        if (!fd) return std::unexpected(fd.error());
        auto added = addVfioFile(fd->get());
        vfio_files_.push_back(std::move(*fd));
        return added;
    }
    [[nodiscard]] vmm::Vm* vm() { return vm_ ? &*vm_ : nullptr; }
    // Closes the VMM's side (as its exit would), VM last.
    void reset() {
        vfio_files_.clear();
        kvm_vfio_.reset();
        gmems_.clear();
        vm_.reset();
        next_slot_ = 0;
    }

private:
    kernel::Syscalls* sys_;
    std::optional<vmm::Vm> vm_;
    std::optional<vmm::KvmVfioDevice> kvm_vfio_;
    std::vector<vmm::GuestMemfd> gmems_;
    std::vector<UniqueFd> vfio_files_;
    std::uint32_t next_slot_ = 0;
};

}  // namespace tio::test
