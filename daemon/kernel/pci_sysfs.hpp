#pragma once
// PCI sysfs: where a function's VFIO cdev is, and its PCI/TSM attributes
// (kernel-uapi.md 2.1 and 4.1). Paths are built only from a parsed Bdf.
#include <string>

#include "common/bdf.hpp"
#include "common/error.hpp"
#include "kernel/syscalls.hpp"

namespace tio::kernel {

struct VfioCdev {
    std::string name;  // "vfio3"
    std::string path;  // "/dev/vfio/devices/vfio3"
    dev_t rdev = 0;    // from sysfs vfio-dev/vfioN/dev
};

class PciSysfs {
public:
    explicit PciSysfs(Syscalls& sys) : sys_(&sys) {}

    // NotFound when there is no such function; NotSupported when it is not bound to vfio-pci.
    [[nodiscard]] Result<VfioCdev> vfioCdev(const Bdf& bdf);
    // Whether the function has a tsm/ directory (TDISP/IDE capable with a link TSM).
    [[nodiscard]] Result<bool> hasTsm(const Bdf& bdf);
    // Name of the TSM the function's DSM is connected to, "" when not connected.
    [[nodiscard]] Result<std::string> tsmConnected(const Bdf& bdf);
    // Connects the function's DSM (always function 0) to the first platform TSM.
    [[nodiscard]] Result<> tsmConnect(const Bdf& bdf);
    // Disconnects the DSM from `tsm` (unbinds every TDI under it first, kernel-side).
    [[nodiscard]] Result<> tsmDisconnect(const Bdf& bdf, const std::string& tsm);
    // The `bound` attribute: TSM name while the TDI is LOCKED, RUN or ERROR.
    [[nodiscard]] Result<std::string> tsmBound(const Bdf& bdf);

    [[nodiscard]] static std::string devicePath(const Bdf& bdf);

private:
    Syscalls* sys_;
};

}  // namespace tio::kernel
