#include "kernel/vfio_device.hpp"

#include <fcntl.h>

#include "kernel/ioctl_call.hpp"
#include "kernel/uapi/vfio.hpp"

namespace tio::kernel {

using namespace tio::uapi;

Result<VfioDevice> VfioDevice::open(Syscalls& sys, const std::string& cdev_path, dev_t expected_rdev) {
    auto fd = sys.open(cdev_path, O_RDWR);
    if (!fd) return std::unexpected(kernelError("open " + cdev_path, fd.error()));
    auto id = sys.identify(fd->get());
    if (!id) return std::unexpected(kernelError("identify " + cdev_path, id.error()));
    if (id->rdev != expected_rdev) {
        return fail(Code::Busy, cdev_path + " is not the device sysfs names (it was replaced)");
    }
    return VfioDevice(sys, std::move(*fd));
}

Result<VfioDevice> VfioDevice::adopt(Syscalls& sys, UniqueFd fd, dev_t expected_rdev) {
    auto id = sys.identify(fd.get());
    if (!id) return std::unexpected(kernelError("identify a stored device fd", id.error()));
    if (id->rdev != expected_rdev) return fail(Code::InvalidArgument, "the stored fd is not that device's cdev");
    return VfioDevice(sys, std::move(fd));
}

Result<std::uint32_t> VfioDevice::bindIommufd(int iommufd, const std::optional<VfToken>& token) {
    vfio_device_bind_iommufd b{};
    b.argsz = sizeof b;
    b.iommufd = iommufd;
    if (token) {
        b.flags = VFIO_DEVICE_BIND_FLAG_TOKEN;
        b.token_uuid_ptr = reinterpret_cast<std::uint64_t>(token->data());
    }
    if (auto r = ioctlStruct(*sys_, fd(), VFIO_DEVICE_BIND_IOMMUFD, b); !r) return std::unexpected(r.error());
    if (auto ok = requireOutput(b.out_devid != 0, VFIO_DEVICE_BIND_IOMMUFD, "dev id 0"); !ok) {
        return std::unexpected(ok.error());
    }
    return b.out_devid;
}

Result<std::uint32_t> VfioDevice::attach(std::uint32_t pt_id) {
    vfio_device_attach_iommufd_pt a{};
    a.argsz = sizeof a;
    a.pt_id = pt_id;
    if (auto r = ioctlStruct(*sys_, fd(), VFIO_DEVICE_ATTACH_IOMMUFD_PT, a); !r) return std::unexpected(r.error());
    return a.pt_id;
}

Result<> VfioDevice::detach() {
    vfio_device_detach_iommufd_pt d{};
    d.argsz = sizeof d;
    if (auto r = ioctlStruct(*sys_, fd(), VFIO_DEVICE_DETACH_IOMMUFD_PT, d); !r) return std::unexpected(r.error());
    return {};
}

Result<VfioDeviceInfo> VfioDevice::info() {
    vfio_device_info i{};
    i.argsz = sizeof i;
    if (auto r = ioctlStruct(*sys_, fd(), VFIO_DEVICE_GET_INFO, i); !r) return std::unexpected(r.error());
    return VfioDeviceInfo{i.flags, i.num_regions, i.num_irqs};
}

Result<> VfioDevice::reset() {
    if (auto r = ioctlValue(*sys_, fd(), VFIO_DEVICE_RESET, 0); !r) return std::unexpected(r.error());
    return {};
}

Result<UniqueFd> VfioDevice::duplicateFd() const {
    auto d = fd_.duplicate();
    if (!d) return std::unexpected(kernelError("dup vfio device", d.error()));
    return std::move(*d);
}

}  // namespace tio::kernel
