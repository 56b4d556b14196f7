#include "vmm/kvm_vmm.hpp"

#include <string>

#include "kernel/ioctl_call.hpp"
#include "kernel/kernel_error.hpp"
#include "kernel/uapi/kvm.hpp"

namespace tio::vmm {

using namespace tio::uapi;
using kernel::ioctlStruct;
using kernel::ioctlValue;

namespace {

Result<UniqueFd> duplicate(const UniqueFd& fd, std::string_view what) {
    auto d = fd.duplicate();
    if (!d) return std::unexpected(kernel::kernelError("dup " + std::string(what), d.error()));
    return std::move(*d);
}

}  // namespace

Result<Kvm> Kvm::open(kernel::Syscalls& sys) {
    auto system = kernel::KvmSystem::open(sys);
    if (!system) return std::unexpected(system.error());
    return Kvm(sys, std::move(*system));
}

Result<Vm> Kvm::createVm(VmType type) {
    const unsigned long machine = kernel::machineType(type);
    // A missing type is NotSupported rather than an opaque EINVAL from KVM_CREATE_VM.
    auto offered = system_.offersVmType(type);
    if (!offered) return std::unexpected(offered.error());
    if (!*offered) {
        return fail(Code::NotSupported, "this kernel's KVM does not offer VM type " + std::to_string(machine));
    }
    auto r = ioctlValue(*sys_, system_.fd(), KVM_CREATE_VM, machine);
    if (!r) return std::unexpected(r.error());
    return Vm(*sys_, UniqueFd(static_cast<int>(*r)));
}

Result<UniqueFd> Vm::duplicateFd() const { return duplicate(fd_, "vm"); }

Result<long> Vm::checkExtension(unsigned long cap) { return ioctlValue(*sys_, fd_.get(), KVM_CHECK_EXTENSION, cap); }

Result<UniqueFd> Vm::createVcpu(std::uint32_t id) {
    auto r = ioctlValue(*sys_, fd_.get(), KVM_CREATE_VCPU, id);
    if (!r) return std::unexpected(r.error());
    return UniqueFd(static_cast<int>(*r));
}

Result<GuestMemfdFlags> Vm::supportedGuestMemfdFlags() {
    auto r = checkExtension(KVM_CAP_GUEST_MEMFD_FLAGS);
    if (!r) return std::unexpected(r.error());
    const auto bits = static_cast<std::uint64_t>(*r);
    return GuestMemfdFlags{(bits & GUEST_MEMFD_FLAG_MMAP) != 0, (bits & GUEST_MEMFD_FLAG_INIT_SHARED) != 0};
}

Result<GuestMemfd> Vm::createGuestMemfd(std::uint64_t size, GuestMemfdFlags flags) {
    kvm_create_guest_memfd g{};
    g.size = size;
    g.flags = (flags.mmap ? GUEST_MEMFD_FLAG_MMAP : 0) | (flags.init_shared ? GUEST_MEMFD_FLAG_INIT_SHARED : 0);
    auto r = ioctlStruct(*sys_, fd_.get(), KVM_CREATE_GUEST_MEMFD, g);
    if (!r) return std::unexpected(r.error());
    return GuestMemfd(UniqueFd(static_cast<int>(*r)));
}

Result<> Vm::setMemslot(std::uint32_t slot, std::uint64_t gpa, std::uint64_t size, int gmem, std::uint64_t gmem_offset,
                        std::uint64_t shared_va) {
    kvm_userspace_memory_region2 m{};
    m.slot = slot;
    m.flags = KVM_MEM_GUEST_MEMFD;
    m.guest_phys_addr = gpa;
    m.memory_size = size;
    m.userspace_addr = shared_va;
    m.guest_memfd_offset = gmem_offset;
    m.guest_memfd = static_cast<std::uint32_t>(gmem);
    if (auto r = ioctlStruct(*sys_, fd_.get(), KVM_SET_USER_MEMORY_REGION2, m); !r) return std::unexpected(r.error());
    return {};
}

Result<> Vm::deleteMemslot(std::uint32_t slot) {
    kvm_userspace_memory_region2 m{};
    m.slot = slot;  // memory_size 0 deletes the slot
    if (auto r = ioctlStruct(*sys_, fd_.get(), KVM_SET_USER_MEMORY_REGION2, m); !r) return std::unexpected(r.error());
    return {};
}

Result<> Vm::setMemoryAttributes(std::uint64_t gpa, std::uint64_t size, bool is_private) {
    kvm_memory_attributes a{};
    a.address = gpa;
    a.size = size;
    a.attributes = is_private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0;
    if (auto r = ioctlStruct(*sys_, fd_.get(), KVM_SET_MEMORY_ATTRIBUTES, a); !r) return std::unexpected(r.error());
    return {};
}

Result<KvmVfioDevice> Vm::createVfioDevice() {
    kvm_create_device d{.type = KVM_DEV_TYPE_VFIO, .fd = 0, .flags = 0};
    if (auto r = ioctlStruct(*sys_, fd_.get(), KVM_CREATE_DEVICE, d); !r) return std::unexpected(r.error());
    return KvmVfioDevice(*sys_, UniqueFd(static_cast<int>(d.fd)));
}

Result<UniqueFd> GuestMemfd::duplicateFd() const { return duplicate(fd_, "guest_memfd"); }

Result<> KvmVfioDevice::fileOp(int vfio_fd, std::uint64_t attr) {
    std::int32_t fdv = vfio_fd;
    kvm_device_attr a{};
    a.group = KVM_DEV_VFIO_FILE;
    a.attr = attr;
    a.addr = reinterpret_cast<std::uint64_t>(&fdv);
    if (auto r = ioctlStruct(*sys_, fd_.get(), KVM_SET_DEVICE_ATTR, a); !r) return std::unexpected(r.error());
    return {};
}

Result<> KvmVfioDevice::addFile(int vfio_fd) { return fileOp(vfio_fd, KVM_DEV_VFIO_FILE_ADD); }
Result<> KvmVfioDevice::removeFile(int vfio_fd) { return fileOp(vfio_fd, KVM_DEV_VFIO_FILE_DEL); }

}  // namespace tio::vmm
