#include "kernel/kvm.hpp"

#include <fcntl.h>

#include <cerrno>
#include <string>

#include "kernel/ioctl_call.hpp"
#include "kernel/kernel_error.hpp"
#include "kernel/uapi/kvm.hpp"

namespace tio::kernel {

using namespace tio::uapi;

Result<Kvm> Kvm::open(Syscalls& sys) {
    auto fd = sys.open("/dev/kvm", O_RDWR);
    if (!fd) return std::unexpected(kernelError("open /dev/kvm", fd.error()));
    auto v = ioctlValue(sys, fd->get(), KVM_GET_API_VERSION, 0);
    if (!v) return std::unexpected(v.error());
    if (*v != kKvmApiVersion) {
        return fail(Code::NotSupported, "KVM API version " + std::to_string(*v) + " (need 12)");
    }
    return Kvm(sys, std::move(*fd));
}

Result<long> Kvm::checkExtension(unsigned long cap) { return ioctlValue(*sys_, fd_.get(), KVM_CHECK_EXTENSION, cap); }

unsigned long Kvm::machineType(VmType type) {
    switch (type) {
        case VmType::Default:
        case VmType::Sim: return KVM_X86_DEFAULT_VM;
        case VmType::SwProtected: return KVM_X86_SW_PROTECTED_VM;
        case VmType::Snp: return KVM_X86_SNP_VM;
        case VmType::Tdx: return KVM_X86_TDX_VM;
    }
    return KVM_X86_DEFAULT_VM;
}

Result<KvmVm> Kvm::createVm(VmType type) {
    const unsigned long machine = machineType(type);
    if (machine != KVM_X86_DEFAULT_VM) {
        // KVM_CAP_VM_TYPES: bit N set = type N supported. Probe so a missing type is
        // NotSupported rather than an opaque EINVAL from KVM_CREATE_VM.
        auto types = checkExtension(KVM_CAP_VM_TYPES);
        if (!types) return std::unexpected(types.error());
        if ((static_cast<unsigned long>(*types) & (1UL << machine)) == 0) {
            return fail(Code::NotSupported, "this kernel's KVM does not offer VM type " + std::to_string(machine));
        }
    }
    auto r = ioctlValue(*sys_, fd_.get(), KVM_CREATE_VM, machine);
    if (!r) return std::unexpected(r.error());
    return KvmVm(*sys_, UniqueFd(static_cast<int>(*r)));
}

Result<KvmVm> KvmVm::adopt(Syscalls& sys, UniqueFd fd) {
    kvm_create_device test{.type = KVM_DEV_TYPE_VFIO, .fd = 0, .flags = KVM_CREATE_DEVICE_TEST};
    auto r = sys.ioctl(fd.get(), KVM_CREATE_DEVICE, reinterpret_cast<unsigned long>(&test));
    if (!r) {
        // ENOTTY/EINVAL/EBADF: not a VM fd (a /dev/kvm fd answers EINVAL, other files ENOTTY).
        return fail(Code::InvalidArgument, "the fd is not a KVM VM", r.error());
    }
    return KvmVm(sys, std::move(fd));
}

Result<long> KvmVm::checkExtension(unsigned long cap) { return ioctlValue(*sys_, fd_.get(), KVM_CHECK_EXTENSION, cap); }

Result<bool> KvmVm::supportsPrivateAttribute() {
    auto r = checkExtension(KVM_CAP_MEMORY_ATTRIBUTES);
    if (!r) return std::unexpected(r.error());
    return (static_cast<std::uint64_t>(*r) & KVM_MEMORY_ATTRIBUTE_PRIVATE) != 0;
}

Result<GuestMemfdFlags> KvmVm::supportedGuestMemfdFlags() {
    auto r = checkExtension(KVM_CAP_GUEST_MEMFD_FLAGS);
    if (!r) return std::unexpected(r.error());
    const auto bits = static_cast<std::uint64_t>(*r);
    return GuestMemfdFlags{(bits & GUEST_MEMFD_FLAG_MMAP) != 0, (bits & GUEST_MEMFD_FLAG_INIT_SHARED) != 0};
}

Result<GuestMemfd> KvmVm::createGuestMemfd(std::uint64_t size, GuestMemfdFlags flags) {
    kvm_create_guest_memfd g{};
    g.size = size;
    g.flags = (flags.mmap ? GUEST_MEMFD_FLAG_MMAP : 0) | (flags.init_shared ? GUEST_MEMFD_FLAG_INIT_SHARED : 0);
    auto r = ioctlStruct(*sys_, fd_.get(), KVM_CREATE_GUEST_MEMFD, g);
    if (!r) return std::unexpected(r.error());
    return GuestMemfd(UniqueFd(static_cast<int>(*r)));
}

Result<> KvmVm::setMemslot(std::uint32_t slot, std::uint64_t gpa, std::uint64_t size, int gmem,
                           std::uint64_t gmem_offset) {
    kvm_userspace_memory_region2 m{};
    m.slot = slot;
    m.flags = KVM_MEM_GUEST_MEMFD;
    m.guest_phys_addr = gpa;
    m.memory_size = size;
    m.guest_memfd_offset = gmem_offset;
    m.guest_memfd = static_cast<std::uint32_t>(gmem);
    auto r = ioctlStruct(*sys_, fd_.get(), KVM_SET_USER_MEMORY_REGION2, m);
    if (r) return {};
    switch (r.error().sys_errno) {
        case EINVAL:
        case EBADF:
            return fail(Code::InvalidArgument,
                        "the fd is not a guest_memfd of this guest's VM, or offset+size is beyond it",
                        r.error().sys_errno);
        case EEXIST:
            return fail(Code::InvalidArgument, "that guest_memfd range is already guest memory", r.error().sys_errno);
        default: return std::unexpected(r.error());
    }
}

Result<> KvmVm::deleteMemslot(std::uint32_t slot) {
    kvm_userspace_memory_region2 m{};
    m.slot = slot;  // memory_size 0 deletes the slot
    if (auto r = ioctlStruct(*sys_, fd_.get(), KVM_SET_USER_MEMORY_REGION2, m); !r) return std::unexpected(r.error());
    return {};
}

Result<> KvmVm::setMemoryAttributes(std::uint64_t gpa, std::uint64_t size, bool is_private) {
    kvm_memory_attributes a{};
    a.address = gpa;
    a.size = size;
    a.attributes = is_private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0;
    if (auto r = ioctlStruct(*sys_, fd_.get(), KVM_SET_MEMORY_ATTRIBUTES, a); !r) return std::unexpected(r.error());
    return {};
}

Result<KvmVfioDevice> KvmVm::createVfioDevice() {
    kvm_create_device d{.type = KVM_DEV_TYPE_VFIO, .fd = 0, .flags = 0};
    if (auto r = ioctlStruct(*sys_, fd_.get(), KVM_CREATE_DEVICE, d); !r) return std::unexpected(r.error());
    return KvmVfioDevice(*sys_, UniqueFd(static_cast<int>(d.fd)));
}

Result<UniqueFd> KvmVm::duplicateFd() const {
    auto d = fd_.duplicate();
    if (!d) return std::unexpected(kernelError("dup vm", d.error()));
    return std::move(*d);
}

Result<> punchGuestMemfd(Syscalls& sys, int fd, std::uint64_t offset, std::uint64_t length) {
    auto r = sys.fallocate(fd, kFallocPunchHole | kFallocKeepSize, offset, length);
    if (!r) return std::unexpected(kernelError("fallocate(PUNCH_HOLE)", r.error()));
    return {};
}

Result<FileIdentity> guestMemfdIdentity(Syscalls& sys, int fd) {
    auto id = sys.identify(fd);
    if (!id) return std::unexpected(kernelError("identify the guest_memfd", id.error()));
    // anon_inode:[kvm-gmem] on Linux; the simulator names its files the same way.
    if (id->link.find("gmem") == std::string::npos && id->link.find("guest_memfd") == std::string::npos) {
        return fail(Code::InvalidArgument, "the fd is not a guest_memfd");
    }
    return FileIdentity{static_cast<std::uint64_t>(id->dev), static_cast<std::uint64_t>(id->ino)};
}

Result<UniqueFd> GuestMemfd::duplicateFd() const {
    auto d = fd_.duplicate();
    if (!d) return std::unexpected(kernelError("dup guest_memfd", d.error()));
    return std::move(*d);
}

Result<KvmVfioDevice> KvmVfioDevice::adopt(Syscalls& sys, UniqueFd fd) {
    kvm_device_attr a{.flags = 0, .group = KVM_DEV_VFIO_FILE, .attr = KVM_DEV_VFIO_FILE_ADD, .addr = 0};
    if (!sys.ioctl(fd.get(), KVM_HAS_DEVICE_ATTR, reinterpret_cast<unsigned long>(&a))) {
        return fail(Code::InvalidArgument, "the fd is not a KVM-VFIO device");
    }
    return KvmVfioDevice(sys, std::move(fd));
}

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

}  // namespace tio::kernel
