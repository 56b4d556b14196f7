#pragma once
// PCI sysfs: where a function's VFIO cdev is (kernel-uapi.md 2.1; its TSM group is
// kernel/tsm.hpp's). Paths are built only from a parsed Bdf.
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
    // The same when the cdev's name is known ("vfio3", a snapshot's): one read of its
    // dev attribute instead of a listing and a read; the listing if the name is gone.
    [[nodiscard]] Result<VfioCdev> vfioCdev(const Bdf& bdf, const std::string& name);
    [[nodiscard]] static std::string devicePath(const Bdf& bdf);
    // An attribute's value without the line end sysfs appends ("tsm0\n" -> "tsm0").
    [[nodiscard]] static std::string attributeValue(std::string raw);

private:
    Syscalls* sys_;
};

}  // namespace tio::kernel
