#pragma once
// The merged PCI/TSM sysfs ABI (v6.19, kernel-uapi.md 4.1): connect a function's
// device security manager (DSM, always function 0) to the platform TSM, and read
// whether its TDI is bound. TDI bind/unbind and guest requests themselves go through
// the proposed iommufd vDEVICE ioctls (Iommufd::tsmBind/tsmRequest).
#include <string>

#include "common/bdf.hpp"
#include "common/error.hpp"
#include "kernel/syscalls.hpp"

namespace tio::kernel {

class Tsm {
public:
    explicit Tsm(Syscalls& sys) : sys_(&sys) {}

    // Name of the TSM the function's DSM is connected to, "" when not connected.
    [[nodiscard]] Result<std::string> connectedTo(const Bdf& bdf);
    // Connects the function's DSM to the first platform TSM (/sys/class/tsm).
    [[nodiscard]] Result<> connect(const Bdf& bdf);
    // Disconnects the DSM from `tsm` (the kernel unbinds every TDI under it first).
    [[nodiscard]] Result<> disconnect(const Bdf& bdf, const std::string& tsm);
    // The `bound` attribute: the TSM's name while the TDI is LOCKED, RUN or ERROR.
    [[nodiscard]] Result<std::string> bound(const Bdf& bdf);

private:
    Syscalls* sys_;
};

}  // namespace tio::kernel
