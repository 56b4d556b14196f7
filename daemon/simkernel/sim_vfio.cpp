// Simulated VFIO device cdevs (kernel-uapi.md section 2).
#include <sys/sysmacros.h>

#include <cerrno>

#include "kernel/uapi/vfio.hpp"
#include "simkernel/sim_files.hpp"

namespace tio::sim {

using namespace tio::uapi;

std::string VfioDeviceFile::link() const { return "/dev/vfio/devices/vfio" + std::to_string(fn_->vfio_index); }
dev_t VfioDeviceFile::rdev() const { return makedev(kVfioMajor, fn_->vfio_index); }

long VfioDeviceFile::ioctl(IoctlCall& c) {
    const unsigned long req = c.desc->request;
    if (req == VFIO_DEVICE_BIND_IOMMUFD) {
        auto b = c.get<vfio_device_bind_iommufd>();
        if ((b.flags & ~VFIO_DEVICE_BIND_FLAG_TOKEN) != 0) return -EINVAL;
        if (const int e =
                kernel_.checkVfToken(*fn_, (b.flags & VFIO_DEVICE_BIND_FLAG_TOKEN) != 0 ? &c.bufs[0] : nullptr))
            return e;
        if (ictx_) return -EINVAL;                 // already bound
        if (fn_->bound != nullptr) return -EBUSY;  // another open of this cdev holds it
        if (c.fds.empty()) return -EBADF;
        auto* ictx = dynamic_cast<IommufdFile*>(kernel_.resolve(c.fds.front().get()));
        if (ictx == nullptr) return -EBADFD;  // iommufd_ctx_from_fd's f_op check
        ictx_ = FileRef<IommufdFile>(ictx);
        dev_id_ = ictx->bindDevice(this, kvm_.get());
        fn_->bound = this;
        b.out_devid = dev_id_;
        c.put(b);
        return 0;
    }
    // "User is restricted from accessing the device before the binding operation is completed."
    if (!ictx_) return -EINVAL;
    if (req == VFIO_DEVICE_ATTACH_IOMMUFD_PT) {
        auto a = c.get<vfio_device_attach_iommufd_pt>();
        if (a.flags != 0) return -EOPNOTSUPP;  // PASID attach is not modelled
        const int r = ictx_->attach(dev_id_, a.pt_id);
        if (r < 0) return r;
        c.put(a);
        return 0;
    }
    if (req == VFIO_DEVICE_DETACH_IOMMUFD_PT) {
        const auto d = c.get<vfio_device_detach_iommufd_pt>();
        if (d.flags != 0) return -EOPNOTSUPP;
        return ictx_->detach(dev_id_);
    }
    if (req == VFIO_DEVICE_GET_INFO) {
        auto i = c.get<vfio_device_info>();
        i.flags = VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_PCI;
        i.num_regions = 9;  // BAR0-5, ROM, CONFIG, VGA
        i.num_irqs = 5;     // INTX, MSI, MSIX, ERR, REQ
        i.cap_offset = 0;
        c.put(i);
        return 0;
    }
    if (req == VFIO_DEVICE_RESET) {
        // An FLR on a bound TDI destroys its TDISP state (kernel-uapi.md 2.5), and the
        // device's evidence is regenerated.
        kernel_.configWrite(*fn_);
        for (auto& g : fn_->evidence_generation) ++g;
        return 0;
    }
    return -ENOTTY;
}

void VfioDeviceFile::release() {
    if (ictx_) {
        ictx_->unbindDevice(dev_id_);
        fn_->bound = nullptr;
        ictx_.reset();
    }
    kvm_.reset();
}

}  // namespace tio::sim
