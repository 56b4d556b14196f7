#pragma once
// One VFIO device cdev (/dev/vfio/devices/vfioN). Binding makes it an iommufd DEVICE
// object; closing the fd detaches, unbinds and (kernel >= 6.17) force-destroys its
// vDEVICE (kernel-uapi.md 2.6).
#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "common/error.hpp"
#include "kernel/syscalls.hpp"

namespace tio::kernel {

// The VF token (a UUID) a VF's user must show when its PF's driver set one
// (VFIO_DEVICE_FEATURE_PCI_VF_TOKEN on the PF): a secret between the PF's owner and
// the VF's.
using VfToken = std::array<std::uint8_t, 16>;

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
    // -> dev_id. With `token`, VFIO_DEVICE_BIND_FLAG_TOKEN shows it.
    [[nodiscard]] Result<std::uint32_t> bindIommufd(int iommufd, const std::optional<VfToken>& token = std::nullopt);
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
