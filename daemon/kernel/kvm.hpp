#pragma once
// KVM: the system fd, a VM, its guest_memfds and its KVM-VFIO device.
#include <cstdint>
#include <string>

#include "common/error.hpp"
#include "kernel/syscalls.hpp"

namespace tio::kernel {

enum class VmType : std::uint8_t { Default, SwProtected, Snp, Tdx, Sim };

struct GuestMemfdFlags {
    bool mmap = false;         // GUEST_MEMFD_FLAG_MMAP: host may mmap and fault it
    bool init_shared = false;  // GUEST_MEMFD_FLAG_INIT_SHARED: starts shared
};

class GuestMemfd;
class KvmVfioDevice;

class KvmVm {
public:
    // Takes a VM fd the caller created elsewhere and proves through the kernel that it
    // is a KVM VM fd: KVM_CREATE_DEVICE with KVM_CREATE_DEVICE_TEST only succeeds on a
    // VM (style B.4 item 14: identity through a kernel operation, not link names).
    [[nodiscard]] static Result<KvmVm> adopt(Syscalls& sys, UniqueFd fd);

    [[nodiscard]] int fd() const noexcept { return fd_.get(); }
    [[nodiscard]] Result<long> checkExtension(unsigned long cap);
    // KVM_CAP_MEMORY_ATTRIBUTES offers KVM_MEMORY_ATTRIBUTE_PRIVATE on this VM.
    [[nodiscard]] Result<bool> supportsPrivateAttribute();
    // KVM_CAP_GUEST_MEMFD_FLAGS: which creation flags this VM offers (0 when absent).
    [[nodiscard]] Result<GuestMemfdFlags> supportedGuestMemfdFlags();
    [[nodiscard]] Result<GuestMemfd> createGuestMemfd(std::uint64_t size, GuestMemfdFlags flags);
    // Binds [gmem_offset, +size) of `gmem` as guest memory at `gpa` in memslot `slot`.
    // InvalidArgument when the kernel refuses the fd (not a guest_memfd of this VM,
    // or offset+size beyond it) or the range is already bound to a memslot.
    [[nodiscard]] Result<> setMemslot(std::uint32_t slot, std::uint64_t gpa, std::uint64_t size, int gmem,
                                      std::uint64_t gmem_offset);
    [[nodiscard]] Result<> deleteMemslot(std::uint32_t slot);
    [[nodiscard]] Result<> setMemoryAttributes(std::uint64_t gpa, std::uint64_t size, bool is_private);
    [[nodiscard]] Result<KvmVfioDevice> createVfioDevice();
    [[nodiscard]] Result<UniqueFd> duplicateFd() const;

private:
    KvmVm(Syscalls& sys, UniqueFd fd) : sys_(&sys), fd_(std::move(fd)) {}
    friend class Kvm;
    Syscalls* sys_;
    UniqueFd fd_;
};

class Kvm {
public:
    // Opens /dev/kvm and checks KVM_GET_API_VERSION == 12.
    [[nodiscard]] static Result<Kvm> open(Syscalls& sys);
    [[nodiscard]] Result<long> checkExtension(unsigned long cap);
    [[nodiscard]] Result<KvmVm> createVm(VmType type);
    [[nodiscard]] static unsigned long machineType(VmType type);

private:
    Kvm(Syscalls& sys, UniqueFd fd) : sys_(&sys), fd_(std::move(fd)) {}
    Syscalls* sys_;
    UniqueFd fd_;
};

// FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE on a guest_memfd: frees the pages, zaps stage-2.
[[nodiscard]] Result<> punchGuestMemfd(Syscalls& sys, int fd, std::uint64_t offset, std::uint64_t length);

// Which file an fd is (st_dev, st_ino), if it is a guest_memfd; InvalidArgument if it
// is another kind of file. The kernel's own name for the file decides, so core never
// reads /proc link text.
struct FileIdentity {
    std::uint64_t dev = 0;
    std::uint64_t ino = 0;
    friend bool operator==(const FileIdentity&, const FileIdentity&) = default;
};
[[nodiscard]] Result<FileIdentity> guestMemfdIdentity(Syscalls& sys, int fd);

class GuestMemfd {
public:
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }
    [[nodiscard]] Result<UniqueFd> duplicateFd() const;

private:
    explicit GuestMemfd(UniqueFd fd) : fd_(std::move(fd)) {}
    friend class KvmVm;
    UniqueFd fd_;
};

// The VM's KVM-VFIO pseudo device (one per VM). FILE_ADD must precede
// VFIO_DEVICE_BIND_IOMMUFD so the device learns its VM (kernel-uapi.md 2.4, 3.7).
class KvmVfioDevice {
public:
    // A KVM-VFIO device fd from before a restart; the kernel proves what it is
    // (KVM_HAS_DEVICE_ATTR for the VFIO file group).
    [[nodiscard]] static Result<KvmVfioDevice> adopt(Syscalls& sys, UniqueFd fd);
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }
    [[nodiscard]] Result<> addFile(int vfio_fd);
    [[nodiscard]] Result<> removeFile(int vfio_fd);

private:
    KvmVfioDevice(Syscalls& sys, UniqueFd fd) : sys_(&sys), fd_(std::move(fd)) {}
    friend class KvmVm;
    Result<> fileOp(int vfio_fd, std::uint64_t attr);
    Syscalls* sys_;
    UniqueFd fd_;
};

}  // namespace tio::kernel
