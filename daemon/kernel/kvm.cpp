#include "kernel/kvm.hpp"

#include <fcntl.h>

#include <cerrno>
#include <string>

#include "kernel/ioctl_call.hpp"
#include "kernel/kernel_error.hpp"
#include "kernel/uapi/kvm.hpp"

namespace tio::kernel {

using namespace tio::uapi;

namespace {

// The kvm module parameter of the in-place conversion series (0444, Y by default
// where the architecture has private memory).
constexpr const char* kInPlaceParameter = "/sys/module/kvm/parameters/gmem_in_place_conversion";

// A memfd's /proc link is "/memfd:NAME (deleted)", set by the kernel.
constexpr std::string_view kMemfdPrefix = "/memfd:";

}  // namespace

unsigned long machineType(VmType type) {
    switch (type) {
        case VmType::Default: return KVM_X86_DEFAULT_VM;
        case VmType::SwProtected: return KVM_X86_SW_PROTECTED_VM;
        case VmType::Snp: return KVM_X86_SNP_VM;
        case VmType::Tdx: return KVM_X86_TDX_VM;
    }
    return KVM_X86_DEFAULT_VM;
}

Result<KvmVm> KvmVm::adopt(Syscalls& sys, UniqueFd fd) {
    // By the kernel's name for the file, never by an ioctl: the VM answers only its creator.
    auto id = sys.identify(fd.get());
    if (!id) return fail(Code::InvalidArgument, "the fd is not a KVM VM", id.error());
    if (id->link != kVmFileName) return fail(Code::InvalidArgument, "the fd is not a KVM VM (it is " + id->link + ")");
    return KvmVm(std::move(fd));
}

Result<KvmSystem> KvmSystem::open(Syscalls& sys) {
    auto fd = sys.open("/dev/kvm", O_RDWR);
    if (!fd) return std::unexpected(kernelError("open /dev/kvm", fd.error()));
    auto v = ioctlValue(sys, fd->get(), KVM_GET_API_VERSION, 0);
    if (!v) return std::unexpected(v.error());
    if (*v != kKvmApiVersion) return fail(Code::NotSupported, "KVM API version " + std::to_string(*v) + " (need 12)");
    return KvmSystem(sys, std::move(*fd));
}

Result<long> KvmSystem::checkExtension(unsigned long cap) {
    return ioctlValue(*sys_, fd_.get(), KVM_CHECK_EXTENSION, cap);
}

Result<bool> KvmSystem::offersVmType(VmType type) {
    if (type == VmType::Default) return true;
    auto types = checkExtension(KVM_CAP_VM_TYPES);
    if (!types) return std::unexpected(types.error());
    return (static_cast<unsigned long>(*types) & (1UL << machineType(type))) != 0;
}

namespace {

Result<FileInfo> inspectNamed(Syscalls& sys, int fd, std::string_view what, bool (*named)(const std::string&)) {
    auto id = sys.identify(fd);
    if (!id) return fail(Code::InvalidArgument, "the fd is not a " + std::string(what), id.error());
    if (!named(id->link)) return fail(Code::InvalidArgument, "the fd is not a " + std::string(what));
    return FileInfo{.identity = {static_cast<std::uint64_t>(id->dev), static_cast<std::uint64_t>(id->ino)},
                    .size = id->size};
}

}  // namespace

Result<FileInfo> inspectGuestMemfd(Syscalls& sys, int fd) {
    return inspectNamed(sys, fd, "guest_memfd", [](const std::string& l) { return l == kGuestMemfdFileName; });
}

Result<FileInfo> inspectMemfd(Syscalls& sys, int fd) {
    return inspectNamed(sys, fd, "memfd", [](const std::string& l) { return l.starts_with(kMemfdPrefix); });
}

Result<> punchGuestMemfd(Syscalls& sys, int fd, std::uint64_t offset, std::uint64_t length) {
    auto r = sys.fallocate(fd, kFallocPunchHole | kFallocKeepSize, offset, length);
    if (!r) return std::unexpected(kernelError("fallocate(PUNCH_HOLE)", r.error()));
    return {};
}

Result<SharedMapping> mapGuestMemfd(Syscalls& sys, int fd, std::uint64_t offset, std::uint64_t length) {
    auto m = sys.mapShared(fd, offset, length);
    if (m) return std::move(*m);
    if (m.error() == ENODEV) return SharedMapping();
    return std::unexpected(kernelError("mmap guest_memfd", m.error()));
}

Result<bool> kernelConvertsInPlace(Syscalls& sys) {
    auto v = sys.readAttribute(kInPlaceParameter);
    if (!v) {
        if (v.error() == ENOENT) return false;  // a kernel without the series
        return std::unexpected(kernelError(std::string("read ") + kInPlaceParameter, v.error()));
    }
    return !v->empty() && (v->front() == 'Y' || v->front() == '1');
}

std::expected<void, AttributeFailure> setGuestMemfdAttributes(Syscalls& sys, int fd, std::uint64_t offset,
                                                              std::uint64_t size, bool is_private) {
    kvm_memory_attributes2 a{};
    a.offset = offset;
    a.size = size;
    a.attributes = is_private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0;
    auto r = sys.ioctl(fd, KVM_SET_MEMORY_ATTRIBUTES2, reinterpret_cast<unsigned long>(&a));
    if (r) return {};
    AttributeFailure f{.error = kernelError("KVM_SET_MEMORY_ATTRIBUTES2", r.error())};
    // Only EAGAIN reports progress; error_offset outside the range is not believed.
    if (r.error() == EAGAIN && a.error_offset > offset && a.error_offset <= offset + size) {
        f.converted = a.error_offset - offset;
    }
    return std::unexpected(f);
}

}  // namespace tio::kernel
