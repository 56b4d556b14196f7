#pragma once
// What the daemon may do with KVM (kernel-as-it-is.md sections 1-3): a VM answers
// only the process that created it, so the daemon holds the VMM's VM fd without ever
// issuing an ioctl on it, asks /dev/kvm (which answers anyone) about capabilities,
// and works on guest_memfd files, whose operations are not tied to the VM's creator.
// The VMM's half (creating VMs, vCPUs, guest_memfds, memslots, the KVM-VFIO device)
// is daemon/vmm/, which the daemon does not link.
#include <cstdint>
#include <string>

#include "common/error.hpp"
#include "kernel/syscalls.hpp"

namespace tio::kernel {

// The x86 machine types AttachVm's options["type"] names (asm/kvm.h KVM_X86_*).
enum class VmType : std::uint8_t { Default, SwProtected, Snp, Tdx };
[[nodiscard]] unsigned long machineType(VmType type);

// The kernel's own names for the files the daemon is handed (verified on 6.18).
inline constexpr std::string_view kVmFileName = "anon_inode:kvm-vm";
inline constexpr std::string_view kGuestMemfdFileName = "anon_inode:[kvm-gmem]";

// A VM fd the VMM created and handed over: kept for the guest's life and the fd
// store, never given an ioctl (it would answer EIO).
class KvmVm {
public:
    // InvalidArgument unless the kernel names the file a KVM VM.
    [[nodiscard]] static Result<KvmVm> adopt(Syscalls& sys, UniqueFd fd);
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }

private:
    explicit KvmVm(UniqueFd fd) : fd_(std::move(fd)) {}
    UniqueFd fd_;
};

// /dev/kvm system queries, which work from any process.
class KvmSystem {
public:
    // Opens /dev/kvm and checks KVM_GET_API_VERSION == 12.
    [[nodiscard]] static Result<KvmSystem> open(Syscalls& sys);
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }
    [[nodiscard]] Result<long> checkExtension(unsigned long cap);
    // KVM_CAP_VM_TYPES offers `type` (KVM_X86_DEFAULT_VM always exists).
    [[nodiscard]] Result<bool> offersVmType(VmType type);

private:
    KvmSystem(Syscalls& sys, UniqueFd fd) : sys_(&sys), fd_(std::move(fd)) {}
    Syscalls* sys_;
    UniqueFd fd_;
};

// Which file an fd is (st_dev, st_ino), and its size.
struct FileIdentity {
    std::uint64_t dev = 0;
    std::uint64_t ino = 0;
    friend bool operator==(const FileIdentity&, const FileIdentity&) = default;
};
struct FileInfo {
    FileIdentity identity;
    std::uint64_t size = 0;
};
// InvalidArgument unless the kernel names the file a guest_memfd.
[[nodiscard]] Result<FileInfo> inspectGuestMemfd(Syscalls& sys, int fd);
// InvalidArgument unless the kernel names the file a memfd (the separate model's
// shared backing, which IOMMU_IOAS_MAP_FILE accepts).
[[nodiscard]] Result<FileInfo> inspectMemfd(Syscalls& sys, int fd);

// FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE on a guest_memfd: frees the pages, zaps stage-2.
[[nodiscard]] Result<> punchGuestMemfd(Syscalls& sys, int fd, std::uint64_t offset, std::uint64_t length);

// This process's shared mapping of [offset, offset+length) of a guest_memfd; an
// empty one when the guest_memfd cannot be mapped (created without
// GUEST_MEMFD_FLAG_MMAP: ENODEV).
[[nodiscard]] Result<SharedMapping> mapGuestMemfd(Syscalls& sys, int fd, std::uint64_t offset, std::uint64_t length);

// Whether this kernel converts memory in place (the attribute on the guest_memfd,
// KVM_SET_MEMORY_ATTRIBUTES2): the kvm module says so by its
// gmem_in_place_conversion parameter, which only that series has. No capability
// number is trusted: the series' numbers are contested.
[[nodiscard]] Result<bool> kernelConvertsInPlace(Syscalls& sys);

// KVM_SET_MEMORY_ATTRIBUTES2 on a guest_memfd. On failure, `converted` is how many
// bytes from `offset` the kernel did change before it stopped (EAGAIN with
// error_offset: a partial conversion the caller must roll back).
struct AttributeFailure {
    Error error;
    std::uint64_t converted = 0;
};
[[nodiscard]] std::expected<void, AttributeFailure> setGuestMemfdAttributes(Syscalls& sys, int fd, std::uint64_t offset,
                                                                            std::uint64_t size, bool is_private);

}  // namespace tio::kernel
