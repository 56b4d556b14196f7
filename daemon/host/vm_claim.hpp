#pragma once
// Host-wide claim of a KVM VM, as DeviceClaim claims a PCI function: a VM another
// guest's daemon holds is Busy. A VM file has no identity of its own to lock (every
// VM is the one anon inode "kvm-vm"), so each daemon that holds a VM registers it in
// <dir>/vm.<guest>.claim as "PID FD" under an flock that lives as long as it does,
// and a new claim asks the kernel, with kcmp(KCMP_FILE), whether any live
// registration's fd is the same open file as the one offered. <dir>/vm.lock
// serializes the look and the registration.
#include <sys/types.h>

#include <string>

#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace tio::host {

class VmClaim {
public:
    VmClaim() = default;
    VmClaim(VmClaim&&) noexcept = default;
    VmClaim& operator=(VmClaim&&) noexcept = default;
    ~VmClaim();

    // Busy when a live registration of another guest holds the same VM file as
    // `vm_fd` (this process's fd). The registration names `vm_fd`: it must stay open
    // under that number while the claim is held.
    [[nodiscard]] static Result<VmClaim> acquire(const std::string& dir, const std::string& guest, int vm_fd);

private:
    VmClaim(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
    std::string path_;
    UniqueFd fd_;  // holds the registration's flock
};

}  // namespace tio::host
