// Guest: devices, vIOMMUs and vDEVICEs (architecture.md section 5; the TDI is tdi.cpp's):
//   AddDevice: claim -> open cdev (opened); the VMM: GetVfioFd -> KVM_DEV_VFIO_FILE_ADD
//   (only the VM's creator may); Attach: BIND_IOMMUFD -> attach (attached);
//   CreateVIommu -> CreateVDevice (binds on a TSM vIOMMU) -> Bind -> (guest) RUN ->
//   Unbind -> destroy, leaf-first.
// Each object enters the object table last, once every kernel step succeeded
// (iommufd's finalize), with what it holds; destroying one leaves it first.
#include "core/guest.hpp"
#include "core/rollback.hpp"
#include "kernel/pci_sysfs.hpp"
#include "kernel/tsm.hpp"

namespace tio::core {

Result<Device*> Guest::deviceFor(std::string_view step, ObjectId id) {
    if (auto r = requireVm(step); !r) return std::unexpected(r.error());
    auto it = devices_.find(id);
    if (it == devices_.end()) return fail(Code::NotFound, "no such device in this guest");
    return &it->second;
}

std::uint32_t Guest::viommuType() const {
    return kernel::viommuTypeFor(config_.platform, vm_ && vm_->features.tsm_request);
}

Result<ObjectId> Guest::addDevice(Who, const Bdf& bdf, std::optional<kernel::VfToken> vf_token) {
    if (auto r = guard_.admitDevice(bdf, devices_.size()); !r) return std::unexpected(r.error());
    if (auto r = requireVm("AddDevice"); !r) return std::unexpected(r.error());
    if (findDevice(bdf)) return fail(Code::Busy, bdf.toString() + " is already a device of this guest");
    auto claim = host::DeviceClaim::acquire(config_.claim_dir, bdf);
    if (!claim) return std::unexpected(claim.error());

    kernel::PciSysfs sysfs(sys_);
    auto cdev = sysfs.vfioCdev(bdf);
    if (!cdev) return std::unexpected(cdev.error());
    kernel::Tsm tsm(sys_);
    auto dsm = tsm.dsmOf(bdf);
    if (!dsm) return std::unexpected(dsm.error());
    // A VF's own tsm/ group appears only once its DSM is connected: what the DSM
    // offers decides, not whether the function shows a group yet.
    auto tdisp = tsm.tdispCapable(*dsm);
    if (!tdisp) return std::unexpected(tdisp.error());
    auto vfio = kernel::VfioDevice::open(sys_, cdev->path, cdev->rdev);
    if (!vfio) return std::unexpected(vfio.error());

    const ObjectId id = next_id_;
    Device d{.id = id,
             .bdf = bdf,
             .vfio_name = cdev->name,
             .claim = std::move(*claim),
             .vfio = std::move(*vfio),
             .tdisp_capable = *tdisp,
             .dsm = *dsm,
             .vf_token = vf_token};
    if (auto r = objects_.add({ObjectKind::Device, id}, 0, holdsOf(d)); !r) return std::unexpected(r.error());
    ++next_id_;
    devices_.emplace(id, std::move(d));
    changed();
    return id;
}

Result<> Guest::attachDevice(Who, ObjectId id) {
    auto dev = deviceFor("Attach", id);
    if (!dev) return std::unexpected(dev.error());
    Device& d = **dev;
    if (auto r = check(kDeviceTransitions, d.state, DeviceState::Attached); !r) return r;
    // The VMM's KVM_DEV_VFIO_FILE_ADD came first (it is a KVM-device ioctl only the
    // VM's creator may issue): VFIO hands the VM to the device at bind time. The
    // daemon cannot see it; where the TSM later finds no VM, that step says so.
    VmContext& vm = *vm_;
    const ObjectKey key{ObjectKind::Device, id};
    if (d.dev_id == 0) {
        // Only closing the cdev unbinds it, and the VMM holds a duplicate: a bind
        // cannot be undone. A failed attach leaves the device bound (its iommufd id in
        // the table), and Attach goes on from there when called again.
        auto dev_id = d.vfio.bindIommufd(vm.iommufd.fd(), d.vf_token);
        if (!dev_id) return std::unexpected(dev_id.error());
        d.dev_id = *dev_id;
        if (auto r = objects_.replace(key, d.dev_id, holdsOf(d)); !r) return r;
    }
    Rollback undo;
    if (!objects_.contains(kHwptKey)) {
        auto hwpt = vm.iommufd.allocNestParentHwpt(d.dev_id, ioasId());
        if (!hwpt) return std::unexpected(hwpt.error());
        if (auto r = objects_.add(kHwptKey, *hwpt, {kIoasKey}); !r) return std::unexpected(r.error());
        undo.add([&, hwpt = *hwpt] {
            (void)d.vfio.detach();  // harmless when not attached; required before destroy
            (void)vm.iommufd.destroy(hwpt);
            (void)objects_.erase(kHwptKey);
        });
    }
    if (auto r = d.vfio.attach(hwptId()); !r) return std::unexpected(r.error());
    if (auto r = transition(kDeviceTransitions, d.state, DeviceState::Attached); !r) return r;
    if (auto r = objects_.replace(key, d.dev_id, holdsOf(d)); !r) return r;
    undo.commit();
    changed();
    return {};
}

Result<> Guest::removeDevice(Who, ObjectId id) {
    auto dev = deviceFor("RemoveDevice", id);
    if (!dev) return std::unexpected(dev.error());
    Device& d = **dev;
    const ObjectKey key{ObjectKind::Device, id};
    if (objects_.pins(key) != 0) return objects_.erase(key);  // Busy, naming what holds it
    if (d.state == DeviceState::Attached) {
        if (auto r = d.vfio.detach(); !r) return std::unexpected(r.error());
    }
    (void)objects_.erase(key);
    devices_.erase(id);  // closes the cdev: unbinds from iommufd; drops the claim
    releaseHwptIfUnused();
    changed();
    return {};
}

Result<ObjectId> Guest::createViommu(Who, ObjectId device) {
    auto dev = deviceFor("CreateVIommu", device);
    if (!dev) return std::unexpected(dev.error());
    if (!vm_->features.viommu) return fail(Code::NotSupported, "this kernel's iommufd has no IOMMU_VIOMMU_ALLOC");
    const std::uint32_t type = viommuType();
    if (type == 0) {
        return fail(Code::NotSupported, "this kernel has no vIOMMU type for " +
                                            std::string(toString(config_.platform)) +
                                            " (the TSM series, RFC v7, supplies one)");
    }
    if ((*dev)->state != DeviceState::Attached || !objects_.contains(kHwptKey)) {
        return fail(Code::InvalidState, "the device is not attached (Device.Attach first)");
    }
    auto kid = vm_->iommufd.allocViommu((*dev)->dev_id, hwptId(), type);
    if (!kid) return std::unexpected(kid.error());
    const ObjectId id = next_id_;
    VIommu v{.id = id, .kernel_id = *kid, .type = type};
    if (auto r = objects_.add({ObjectKind::VIommu, id}, v.kernel_id, holdsOf(v)); !r) {
        (void)vm_->iommufd.destroy(*kid);
        return std::unexpected(r.error());
    }
    ++next_id_;
    viommus_.emplace(id, v);
    changed();
    return id;
}

Result<> Guest::destroyViommu(Who, ObjectId viommu) {
    if (auto r = requireVm("DestroyVIommu"); !r) return std::unexpected(r.error());
    auto it = viommus_.find(viommu);
    if (it == viommus_.end()) return fail(Code::NotFound, "no such vIOMMU in this guest");
    const ObjectKey key{ObjectKind::VIommu, viommu};
    if (objects_.pins(key) != 0) return objects_.erase(key);  // Busy, naming what holds it
    if (auto r = vm_->iommufd.destroy(it->second.kernel_id); !r) return std::unexpected(r.error());
    (void)objects_.erase(key);
    viommus_.erase(it);
    releaseHwptIfUnused();
    changed();
    return {};
}

Result<> Guest::createVdevice(Who, ObjectId device, ObjectId viommu, std::uint64_t virtual_id) {
    auto dev = deviceFor("CreateVDevice", device);
    if (!dev) return std::unexpected(dev.error());
    Device& d = **dev;
    auto v = viommus_.find(viommu);
    if (v == viommus_.end()) return fail(Code::NotFound, "no such vIOMMU in this guest");
    if (d.vdevice) return fail(Code::InvalidState, "the device already has a vDEVICE (DestroyVDevice first)");
    if (!vm_->features.vdevice) return fail(Code::NotSupported, "this kernel's iommufd has no IOMMU_VDEVICE_ALLOC");
    for (const auto& [id, other] : devices_) {
        if (other.vdevice && other.vdevice->viommu == viommu && other.vdevice->virtual_id == virtual_id) {
            return fail(Code::InvalidArgument, "virtual id " + std::to_string(virtual_id) + " is taken on this vIOMMU");
        }
    }
    // On a TSM vIOMMU the vDEVICE binds the TDI, which needs its security manager
    // connected first (SPDM and IDE with the device, tsm/connect of its DSM).
    Rollback undo;
    const bool binds = d.tdisp_capable && kernel::isTsmViommuType(v->second.type);
    if (binds) {
        if (auto r = connectDsm(d, undo); !r) return r;
    }
    auto kid = vm_->iommufd.allocVdevice(v->second.kernel_id, d.dev_id, virtual_id);
    // ENODEV: the TSM found no VM behind the device, which VFIO hands it at bind time
    // from the VMM's KVM-VFIO device.
    if (!kid && binds && kid.error().sys_errno == ENODEV) {
        return fail(Code::InvalidState,
                    "the device has no VM (the VMM's KVM_DEV_VFIO_FILE_ADD must come before Device.Attach)", ENODEV);
    }
    if (!kid) return std::unexpected(kid.error());
    const VDevice vdev{.kernel_id = *kid, .viommu = viommu, .virtual_id = virtual_id};
    if (auto r = objects_.add({ObjectKind::VDevice, device}, vdev.kernel_id, holdsOf(d, vdev)); !r) {
        (void)vm_->iommufd.destroy(*kid);
        return std::unexpected(r.error());
    }
    undo.commit();
    d.vdevice = vdev;
    changed();
    return {};
}

Result<> Guest::destroyVdevice(Who, ObjectId device) {
    auto dev = deviceFor("DestroyVDevice", device);
    if (!dev) return std::unexpected(dev.error());
    Device& d = **dev;
    if (!d.vdevice) return fail(Code::InvalidState, "the device has no vDEVICE (CreateVDevice first)");
    if (auto r = refreshTdi(d); !r) return std::unexpected(r.error());
    if (d.tdiNeedsUnbind()) {
        return fail(Code::InvalidState, "the TDI is " + std::string(toString(d.tdi)) + " (Unbind first)");
    }
    if (auto r = vm_->iommufd.destroy(d.vdevice->kernel_id); !r) return std::unexpected(r.error());
    (void)objects_.erase({ObjectKind::VDevice, device});
    d.vdevice.reset();
    changed();
    return {};
}

Result<UniqueFd> Guest::vfioFd(Who, ObjectId device) {
    auto dev = deviceFor("GetVfioFd", device);
    if (!dev) return std::unexpected(dev.error());
    return (*dev)->vfio.duplicateFd();
}

}  // namespace tio::core
