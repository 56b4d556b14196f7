// Guest: devices, vIOMMUs, vDEVICEs and TDIs (architecture.md section 5):
//   AddDevice: claim -> open cdev (opened); the VMM: GetVfioFd -> KVM_DEV_VFIO_FILE_ADD
//   (only the VM's creator may); Attach: BIND_IOMMUFD -> attach (attached);
//   CreateVIommu -> CreateVDevice -> Bind -> (guest) RUN -> Unbind -> destroy, leaf-first.
// Each object enters the object table last, once every kernel step succeeded
// (iommufd's finalize), with what it holds; destroying one leaves it first.
#include "core/guest.hpp"
#include "core/rollback.hpp"
#include "core/tdi.hpp"
#include "kernel/pci_sysfs.hpp"
#include "kernel/tsm.hpp"

namespace tio::core {

namespace {
// A TDISP interface report fits in a few KiB; the kernel cap for pointer buffers is 64 KiB.
constexpr std::uint32_t kMaxTsmResponse = 16U * 1024U;
}  // namespace

Result<Device*> Guest::deviceFor(std::string_view step, ObjectId id) {
    if (auto r = requireVm(step); !r) return std::unexpected(r.error());
    auto it = devices_.find(id);
    if (it == devices_.end()) return fail(Code::NotFound, "no such device in this guest");
    return &it->second;
}

std::uint32_t Guest::viommuType() const { return kernel::viommuTypeFor(config_.platform); }

Result<ObjectId> Guest::addDevice(Who, const Bdf& bdf) {
    if (auto r = guard_.admitDevice(bdf, devices_.size()); !r) return std::unexpected(r.error());
    if (auto r = requireVm("AddDevice"); !r) return std::unexpected(r.error());
    if (findDevice(bdf)) return fail(Code::Busy, bdf.toString() + " is already a device of this guest");
    auto claim = host::DeviceClaim::acquire(config_.claim_dir, bdf);
    if (!claim) return std::unexpected(claim.error());

    kernel::PciSysfs sysfs(sys_);
    auto cdev = sysfs.vfioCdev(bdf);
    if (!cdev) return std::unexpected(cdev.error());
    auto has_tsm = sysfs.hasTsm(bdf);
    if (!has_tsm) return std::unexpected(has_tsm.error());
    auto vfio = kernel::VfioDevice::open(sys_, cdev->path, cdev->rdev);
    if (!vfio) return std::unexpected(vfio.error());

    const ObjectId id = next_id_;
    Device d{.id = id,
             .bdf = bdf,
             .vfio_name = cdev->name,
             .claim = std::move(*claim),
             .vfio = std::move(*vfio),
             .tdisp_capable = *has_tsm};
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
        auto dev_id = d.vfio.bindIommufd(vm.iommufd.fd());
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
    if ((*dev)->state != DeviceState::Attached || !objects_.contains(kHwptKey)) {
        return fail(Code::InvalidState, "the device is not attached (Device.Attach first)");
    }
    const std::uint32_t type = viommuType();
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
    auto kid = vm_->iommufd.allocVdevice(v->second.kernel_id, d.dev_id, virtual_id);
    if (!kid) return std::unexpected(kid.error());
    const VDevice vdev{.kernel_id = *kid, .viommu = viommu, .virtual_id = virtual_id};
    if (auto r = objects_.add({ObjectKind::VDevice, device}, vdev.kernel_id, holdsOf(d, vdev)); !r) {
        (void)vm_->iommufd.destroy(*kid);
        return std::unexpected(r.error());
    }
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

Result<> Guest::moveTdi(Device& d, TdiState to) {
    if (auto r = transition(kTdiTransitions, d.tdi, to); !r) return r;
    changed();
    return {};
}

Result<> Guest::refreshTdi(Device& d) {
    // Without the request tunnel the state cannot be asked; Bind was impossible too.
    if (!d.vdevice || !d.tdisp_capable || d.tdi == TdiState::Unlocked || !vm_->features.tsm_request) {
        return {};
    }
    auto state = vm_->iommufd.tdiState(d.vdevice->kernel_id);
    if (!state) return std::unexpected(state.error());
    if (toTdiState(*state) == TdiState::Error && d.tdi != TdiState::Error) {
        if (auto r = moveTdi(d, TdiState::Error); !r) return r;
    }
    return {};
}

Result<> Guest::bind(Who, ObjectId device) {
    auto dev = deviceFor("Bind", device);
    if (!dev) return std::unexpected(dev.error());
    Device& d = **dev;
    if (!d.tdisp_capable) return fail(Code::NotSupported, d.bdf.toString() + " has no TDISP capability");
    if (!vm_->features.tsm_op) return fail(Code::NotSupported, "this kernel has no TSM bind (IOMMU_VDEVICE_TSM_OP)");
    // SEV-TIO's trusted DMA goes through IOPTEs over private memory, which only a
    // kernel that maps guest_memfd by file can make (shared memory is still served).
    if (config_.platform == Platform::Snp && vm_->gmem_map_file == false) {
        return fail(Code::NotSupported,
                    "SNP trusted DMA needs guest_memfd in IOMMU_IOAS_MAP_FILE (the RFC), which this kernel lacks");
    }
    if (!d.vdevice) return fail(Code::InvalidState, "Bind needs a vDEVICE (CreateVDevice first)");
    if (auto r = refreshTdi(d); !r) return std::unexpected(r.error());
    if (!permitted(kTdiTransitions, d.tdi, TdiState::Locked)) {
        return fail(Code::InvalidState, whatFirst(d.tdi, TdiState::Locked));
    }
    kernel::Tsm tsm(sys_);
    auto connected = tsm.connectedTo(d.bdf);
    if (!connected) return std::unexpected(connected.error());
    Rollback undo;
    if (connected->empty()) {
        // SPDM/IDE with the device's security manager first (tsm/connect of its DSM).
        if (auto r = tsm.connect(d.bdf); !r) return std::unexpected(r.error());
        // Undoing is safe: the DSM was not connected, so no TDI under it can be bound.
        undo.add([&] {
            if (auto name = tsm.connectedTo(d.bdf); name && !name->empty()) (void)tsm.disconnect(d.bdf, *name);
        });
    }
    if (auto r = vm_->iommufd.tsmBind(d.vdevice->kernel_id); !r) return std::unexpected(r.error());
    undo.commit();
    d.tsm_connected = true;  // the DSM stays connected after Unbind (disconnect is an admin act)
    if (auto r = moveTdi(d, TdiState::Locked); !r) return r;
    return {};
}

Result<std::vector<std::uint8_t>> Guest::guestRequest(Who, ObjectId device, GuestRequestScope scope,
                                                      std::span<const std::uint8_t> request) {
    auto dev = deviceFor("GuestRequest", device);
    if (!dev) return std::unexpected(dev.error());
    Device& d = **dev;
    // The request is validated before any state is looked at (style rule 19).
    if (request.empty() || request.size() > kMaxTsmResponse) {
        return fail(Code::InvalidArgument, "a request is 1 to 16384 bytes");
    }
    if (!vm_->features.tsm_request) {
        return fail(Code::NotSupported, "this kernel has no TSM request tunnel (IOMMU_VDEVICE_TSM_REQ)");
    }
    if (!d.vdevice) return fail(Code::InvalidState, "GuestRequest needs a vDEVICE (CreateVDevice first)");
    if (auto r = refreshTdi(d); !r) return std::unexpected(r.error());
    std::optional<TdiState> target;
    if (scope == GuestRequestScope::StateChange) {
        if (request.size() != 1) return fail(Code::InvalidArgument, "a state-change request is one byte");
        if (request[0] == static_cast<std::uint8_t>(kernel::TdispState::Run)) target = TdiState::Run;
        else if (request[0] == static_cast<std::uint8_t>(kernel::TdispState::ConfigUnlocked))
            target = TdiState::Unlocked;
        else return fail(Code::InvalidArgument, "state-change asks for 0x02 (RUN) or 0x00 (unlocked)");
        if (!permitted(kTdiTransitions, d.tdi, *target)) return fail(Code::InvalidState, whatFirst(d.tdi, *target));
    } else if (d.tdi != TdiState::Locked && d.tdi != TdiState::Run) {
        return fail(Code::InvalidState,
                    "the TDI is " + std::string(toString(d.tdi)) + "; info needs it bound (Bind first)");
    }
    auto resp = vm_->iommufd.tsmRequest(
        d.vdevice->kernel_id,
        scope == GuestRequestScope::Info ? kernel::TsmRequestScope::Info : kernel::TsmRequestScope::StateChange,
        request, kMaxTsmResponse);
    if (!resp) return std::unexpected(resp.error());
    if (target) {
        if (auto r = moveTdi(d, *target); !r) return std::unexpected(r.error());
    }
    return resp;
}

Result<> Guest::unbind(Who, ObjectId device) {
    auto dev = deviceFor("Unbind", device);
    if (!dev) return std::unexpected(dev.error());
    Device& d = **dev;
    if (!d.vdevice || !d.tdisp_capable) return fail(Code::InvalidState, "the device is not bound (Bind first)");
    if (auto r = refreshTdi(d); !r) return std::unexpected(r.error());
    if (!permitted(kTdiTransitions, d.tdi, TdiState::Unlocked)) {
        return fail(Code::InvalidState, whatFirst(d.tdi, TdiState::Unlocked));
    }
    if (auto r = vm_->iommufd.tsmUnbind(d.vdevice->kernel_id); !r) return std::unexpected(r.error());
    if (auto r = moveTdi(d, TdiState::Unlocked); !r) return r;
    return {};
}

Result<> Guest::reset(Who, ObjectId device) {
    auto dev = deviceFor("Reset", device);
    if (!dev) return std::unexpected(dev.error());
    Device& d = **dev;
    if (auto r = refreshTdi(d); !r) return std::unexpected(r.error());
    // A reset of a bound TDI destroys its TDISP state: never do it (kernel-uapi.md 2.5).
    if (d.tdiNeedsUnbind()) {
        return fail(Code::InvalidState, "the TDI is " + std::string(toString(d.tdi)) + " (Unbind first)");
    }
    return d.vfio.reset();
}

std::vector<ObjectId> Guest::watchTdis() {
    std::vector<ObjectId> broken;
    if (!vm_) return broken;
    for (auto& [id, d] : devices_) {
        const TdiState before = d.tdi;
        // A failed read is retried on the next look; the state stays as last known.
        if (refreshTdi(d) && before != TdiState::Error && d.tdi == TdiState::Error) broken.push_back(id);
    }
    return broken;
}

Result<UniqueFd> Guest::vfioFd(Who, ObjectId device) {
    auto dev = deviceFor("GetVfioFd", device);
    if (!dev) return std::unexpected(dev.error());
    return (*dev)->vfio.duplicateFd();
}

}  // namespace tio::core
