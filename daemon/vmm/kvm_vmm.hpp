#pragma once
// The VMM's side of KVM: what only the process that created a VM may do with it
// (kernel-as-it-is.md section 1: every VM, vCPU and KVM-device ioctl from another
// process is EIO). tio-managerd never links this; the demo VMM, the tests and the
// benchmarks do, against the real /dev/kvm or the simulator's, through the same
// Syscalls boundary the daemon uses.
#include <cstdint>

#include "common/error.hpp"
#include "kernel/kvm.hpp"
#include "kernel/syscalls.hpp"

namespace tio::vmm {

using kernel::VmType;

struct GuestMemfdFlags {
    bool mmap = false;         // GUEST_MEMFD_FLAG_MMAP: host may mmap and fault it
    bool init_shared = false;  // GUEST_MEMFD_FLAG_INIT_SHARED: starts shared
};

class GuestMemfd {
public:
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }
    [[nodiscard]] Result<UniqueFd> duplicateFd() const;

private:
    explicit GuestMemfd(UniqueFd fd) : fd_(std::move(fd)) {}
    friend class Vm;
    UniqueFd fd_;
};

// The VM's KVM-VFIO pseudo device. FILE_ADD must precede the daemon's
// VFIO_DEVICE_BIND_IOMMUFD: VFIO hands the VM to the device at bind time.
class KvmVfioDevice {
public:
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }
    [[nodiscard]] Result<> addFile(int vfio_fd);
    [[nodiscard]] Result<> removeFile(int vfio_fd);

private:
    KvmVfioDevice(kernel::Syscalls& sys, UniqueFd fd) : sys_(&sys), fd_(std::move(fd)) {}
    friend class Vm;
    Result<> fileOp(int vfio_fd, std::uint64_t attr);
    kernel::Syscalls* sys_;
    UniqueFd fd_;
};

class Vm {
public:
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }
    // A duplicate to hand to tio-managerd (AttachVm); the VM stays this process's.
    [[nodiscard]] Result<UniqueFd> duplicateFd() const;
    [[nodiscard]] Result<long> checkExtension(unsigned long cap);
    [[nodiscard]] Result<UniqueFd> createVcpu(std::uint32_t id);
    [[nodiscard]] Result<GuestMemfdFlags> supportedGuestMemfdFlags();
    [[nodiscard]] Result<GuestMemfd> createGuestMemfd(std::uint64_t size, GuestMemfdFlags flags);
    // Binds [gmem_offset, +size) of `gmem` as guest memory at `gpa` in memslot `slot`;
    // `shared_va` is the shared backing of the separate model (0: none).
    [[nodiscard]] Result<> setMemslot(std::uint32_t slot, std::uint64_t gpa, std::uint64_t size, int gmem,
                                      std::uint64_t gmem_offset, std::uint64_t shared_va = 0);
    [[nodiscard]] Result<> deleteMemslot(std::uint32_t slot);
    // The VM-scoped attribute (separate backing; refused where in-place conversion is on).
    [[nodiscard]] Result<> setMemoryAttributes(std::uint64_t gpa, std::uint64_t size, bool is_private);
    [[nodiscard]] Result<KvmVfioDevice> createVfioDevice();

private:
    Vm(kernel::Syscalls& sys, UniqueFd fd) : sys_(&sys), fd_(std::move(fd)) {}
    friend class Kvm;
    kernel::Syscalls* sys_;
    UniqueFd fd_;
};

// /dev/kvm as the daemon sees it (kernel::KvmSystem: anyone may ask it), plus the
// one thing only a VMM does with it: create a VM.
class Kvm {
public:
    // Opens /dev/kvm and checks KVM_GET_API_VERSION == 12.
    [[nodiscard]] static Result<Kvm> open(kernel::Syscalls& sys);
    [[nodiscard]] Result<long> checkExtension(unsigned long cap) { return system_.checkExtension(cap); }
    // NotSupported when KVM_CAP_VM_TYPES does not offer `type`.
    [[nodiscard]] Result<Vm> createVm(VmType type);

private:
    Kvm(kernel::Syscalls& sys, kernel::KvmSystem system) : sys_(&sys), system_(std::move(system)) {}
    kernel::Syscalls* sys_;
    kernel::KvmSystem system_;
};

}  // namespace tio::vmm
