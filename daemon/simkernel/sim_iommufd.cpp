// Simulated /dev/iommu, the object table (drivers/iommu/iommufd/main.c): ids from
// 1, `users` references, EBUSY on destroying a referenced object, DEVICE objects
// owned by VFIO, tombstones on device unbind, the ioctl dispatch, the nest-parent
// HWPT and release on the last close. The IOAS and its areas are sim_ioas.cpp, the
// vIOMMU, vDEVICE and TSM ioctls sim_viommu.cpp (kernel-uapi.md 1.4/1.5).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>

#include "common/checked_math.hpp"
#include "kernel/iommufd.hpp"
#include "kernel/uapi/iommufd.hpp"
#include "kernel/uapi/iommufd_reshape_proposed.hpp"
#include "kernel/uapi/iommufd_tsm_proposed.hpp"
#include "simkernel/sim_files.hpp"

namespace tio::sim {

using namespace tio::uapi;

dev_t IommufdFile::rdev() const { return makedev(10, 123); }

IommuObj* IommufdFile::find(std::uint32_t id, ObjType type) {
    auto it = objects_.find(id);
    if (it == objects_.end() || it->second.type != type) return nullptr;
    return &it->second;
}

const IommuObj* IommufdFile::find(std::uint32_t id, ObjType type) const {
    return const_cast<IommufdFile*>(this)->find(id, type);
}

std::uint32_t IommufdFile::add(IommuObj obj) {
    // The lowest free id from 1, as xa_alloc gives iommufd (ids are reused). A
    // tombstoned id is not free: its slot holds XA_ZERO_ENTRY until the fd closes.
    std::uint32_t id = 1;
    while (objects_.contains(id) || tombstones_.contains(id)) ++id;
    objects_.emplace(id, std::move(obj));
    kernel_.registerObjects(1);
    return id;
}

long IommufdFile::ioctl(IoctlCall& c) {
    const unsigned long req = c.desc->request;
    if (req == IOMMU_IOAS_ALLOC) return ioasAlloc(c);
    if (req == IOMMU_DESTROY) return destroy(c);
    if (req == IOMMU_IOAS_IOVA_RANGES) return iovaRanges(c);
    if (req == IOMMU_IOAS_MAP_FILE) return mapFile(c);
    if (req == IOMMU_IOAS_MAP) return mapAddress(c);
    if (req == IOMMU_IOAS_UNMAP) return unmap(c);
    if (req == IOMMU_HWPT_ALLOC) return hwptAlloc(c);
    if (req == IOMMU_GET_HW_INFO) return hwInfo(c);
    if (req == IOMMU_VIOMMU_ALLOC) return viommuAlloc(c);
    if (req == IOMMU_VDEVICE_ALLOC) return vdeviceAlloc(c);
    // 0x95 is IOMMU_IOAS_NOIOMMU_GET_PA on every profile (merged for 7.3); the TSM
    // request (RFC v7, 0x96) exists only with the proposed series.
    if (req == IOMMU_IOAS_NOIOMMU_GET_PA) return noiommuGetPa(c);
    if (req == IOMMU_VDEVICE_TSM_REQ && kernel_.proposedSeries()) return tsmReq(c);
    // The project's own proposal: only a kernel with the proposed series has it.
    if (req == IOMMU_IOAS_RESHAPE && kernel_.proposedSeries()) return reshape(c);
    return -ENOTTY;
}

long IommufdFile::ioasAlloc(IoctlCall& c) {
    auto a = c.get<iommu_ioas_alloc>();
    if (a.flags != 0) return -EOPNOTSUPP;
    a.out_ioas_id = add(IommuObj{.type = ObjType::Ioas});
    c.put(a);
    return 0;
}

void IommufdFile::destroyObject(std::uint32_t id) {
    auto it = objects_.find(id);
    if (it == objects_.end()) return;
    IommuObj& o = it->second;
    switch (o.type) {
        case ObjType::Ioas:
            for (auto& [iova, area] : o.areas) dropArea(area);
            break;
        case ObjType::HwptPaging:
            --objects_.at(o.ioas).users;
            kernel_.count("iopte_unmap", o.table.counts().total());
            kernel_.count("iotlb_flush");
            break;
        case ObjType::Viommu: --objects_.at(o.hwpt).users; break;
        case ObjType::Vdevice: {
            // Destroying a vDEVICE unbinds its TDI (TSM series).
            IommuObj& dev = objects_.at(o.dev);
            if (kernel::isTsmViommuType(objects_.at(o.viommu).viommu_type)) kernel_.unbindTdi(dev.device->function());
            dev.vdevice = 0;
            --objects_.at(o.viommu).users;
            break;
        }
        case ObjType::Device: break;
    }
    objects_.erase(it);
    kernel_.registerObjects(-1);
}

long IommufdFile::destroy(IoctlCall& c) {
    const auto d = c.get<iommu_destroy>();
    auto it = objects_.find(d.id);
    if (it == objects_.end()) return -ENOENT;
    // The VFIO driver holds a users reference on DEVICE objects until unbind.
    if (it->second.type == ObjType::Device || it->second.users != 0) return -EBUSY;
    destroyObject(d.id);
    return 0;
}

long IommufdFile::hwptAlloc(IoctlCall& c) {
    auto h = c.get<iommu_hwpt_alloc>();
    if ((h.flags & ~IOMMU_HWPT_ALLOC_NEST_PARENT) != 0) return -EOPNOTSUPP;
    if (h.__reserved != 0 || h.__reserved2 != 0) return -EOPNOTSUPP;
    // Nested (user-managed stage-1) HWPTs are not modelled: the TSM flow only needs the
    // nest-parent stage-2 (kernel-uapi.md 4.4 item 6).
    if (h.data_type != IOMMU_HWPT_DATA_NONE) return -EOPNOTSUPP;
    if (h.data_len != 0 || h.data_uptr != 0) return -EINVAL;
    if (find(h.dev_id, ObjType::Device) == nullptr) return -ENOENT;
    IommuObj* ioas = find(h.pt_id, ObjType::Ioas);
    if (ioas == nullptr) return -ENOENT;
    ++ioas->users;
    h.out_hwpt_id = add(IommuObj{
        .type = ObjType::HwptPaging, .ioas = h.pt_id, .nest_parent = (h.flags & IOMMU_HWPT_ALLOC_NEST_PARENT) != 0});
    sync(h.pt_id, 0, kEverything, false);  // a new domain gets every mapping of its IOAS
    c.put(h);
    return 0;
}

long IommufdFile::hwInfo(IoctlCall& c) {
    auto h = c.get<iommu_hw_info>();
    if (h.flags != 0) return -EOPNOTSUPP;
    if (find(h.dev_id, ObjType::Device) == nullptr) return -ENOENT;
    std::uint32_t type = IOMMU_HW_INFO_TYPE_NONE;
    std::uint32_t len = 0;
    if (kernel_.platform() == Platform::Tdx) {
        type = IOMMU_HW_INFO_TYPE_INTEL_VTD;
        len = 24;
    } else if (kernel_.platform() == Platform::Cca) {
        type = IOMMU_HW_INFO_TYPE_ARM_SMMUV3;
        len = 40;
    }
    // The buffer tail is zero-filled; data_len reports the kernel's length.
    std::fill(c.bufs[0].begin(), c.bufs[0].end(), 0);
    h.data_len = len;
    h.out_data_type = type;
    h.out_capabilities = 0;
    h.out_max_pasid_log2 = 0;
    c.put(h);
    return 0;
}

std::uint32_t IommufdFile::bindDevice(VfioDeviceFile* dev, KvmVmFile* kvm) {
    return add(IommuObj{.type = ObjType::Device, .device = dev, .kvm = FileRef<KvmVmFile>(kvm)});
}

int IommufdFile::attach(std::uint32_t dev_id, std::uint32_t pt_id) {
    IommuObj* dev = find(dev_id, ObjType::Device);
    if (dev == nullptr) return -ENOENT;
    IommuObj* hwpt = find(pt_id, ObjType::HwptPaging);
    // Attaching straight to an IOAS would create an auto-domain; the confidential flow
    // always attaches to the guest's nest-parent HWPT, so the simulator models only that.
    if (hwpt == nullptr) return find(pt_id, ObjType::Ioas) != nullptr ? -EOPNOTSUPP : -ENOENT;
    ++hwpt->users;
    if (dev->hwpt != 0) --objects_.at(dev->hwpt).users;  // replacement is atomic
    dev->hwpt = pt_id;
    return 0;
}

int IommufdFile::detach(std::uint32_t dev_id) {
    IommuObj* dev = find(dev_id, ObjType::Device);
    if (dev == nullptr || dev->hwpt == 0) return -EINVAL;
    --objects_.at(dev->hwpt).users;
    dev->hwpt = 0;
    return 0;
}

void IommufdFile::unbindDevice(std::uint32_t dev_id) {
    IommuObj* dev = find(dev_id, ObjType::Device);
    if (dev == nullptr) return;
    if (dev->vdevice != 0) {
        // v6.17: the vDEVICE dies with its device, and its id is tombstoned until close.
        const std::uint32_t vid = dev->vdevice;
        destroyObject(vid);
        tombstones_.insert(vid);
    }
    detach(dev_id);
    destroyObject(dev_id);
}

void IommufdFile::release() {
    // iommufd_fops_release: destroy depth-first, every object whose users is 0, until
    // none remain. DEVICE objects cannot be here: a bound device holds this file.
    while (!objects_.empty()) {
        bool progressed = false;
        for (auto it = objects_.begin(); it != objects_.end();) {
            const std::uint32_t id = it->first;
            ++it;
            if (objects_.at(id).users == 0) {
                destroyObject(id);
                progressed = true;
            }
        }
        if (!progressed) break;  // cannot happen: references form a DAG
    }
}

}  // namespace tio::sim
