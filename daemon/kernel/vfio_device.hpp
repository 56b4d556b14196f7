#pragma once
// One VFIO device cdev (/dev/vfio/devices/vfioN). Binding makes it an iommufd DEVICE
// object; closing the fd detaches, unbinds and (kernel >= 6.17) force-destroys its
// vDEVICE (kernel-uapi.md 2.6).
#include <cstdint>
#include <string>

#include "common/error.hpp"
#include "kernel/syscalls.hpp"

namespace tio::kernel {

struct VfioDeviceInfo {
    std::uint32_t flags = 0;
    std::uint32_t num_regions = 0;
    std::uint32_t num_irqs = 0;
};

class VfioDevice {
public:
    // Opens `cdev_path` and checks the node is the expected character device
    // (`expected_rdev` from sysfs), guarding against renames (kernel-uapi.md 2.1).
    [[nodiscard]] static Result<VfioDevice> open(Syscalls& sys, const std::string& cdev_path, dev_t expected_rdev);
    // A device fd from before a restart, checked against the cdev sysfs names now.
    [[nodiscard]] static Result<VfioDevice> adopt(Syscalls& sys, UniqueFd fd, dev_t expected_rdev);

    [[nodiscard]] int fd() const noexcept { return fd_.get(); }
    [[nodiscard]] Result<std::uint32_t> bindIommufd(int iommufd);  // -> dev_id
    [[nodiscard]] Result<std::uint32_t> attach(std::uint32_t pt_id);
    [[nodiscard]] Result<> detach();
    [[nodiscard]] Result<VfioDeviceInfo> info();
    [[nodiscard]] Result<> reset();
    [[nodiscard]] Result<UniqueFd> duplicateFd() const;

private:
    VfioDevice(Syscalls& sys, UniqueFd fd) : sys_(&sys), fd_(std::move(fd)) {}
    Syscalls* sys_;
    UniqueFd fd_;
};

}  // namespace tio::kernel
