// Simulated /dev/iommu, the vIOMMU and vDEVICE objects (viommu.c): one vDEVICE per
// device, virt_id unique per vIOMMU. With the TSM series (RFC v7, the proposed
// profile) a TSM backend supplies the vIOMMU type, and a vDEVICE on such a vIOMMU
// binds its TDI (sim_tsm.cpp serves the requests).
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
#include "simkernel/sim_files.hpp"

namespace tio::sim {

using namespace tio::uapi;

long IommufdFile::viommuAlloc(IoctlCall& c) {
    auto v = c.get<iommu_viommu_alloc>();
    if (v.flags != 0 || v.type == IOMMU_VIOMMU_TYPE_DEFAULT) return -EOPNOTSUPP;
    // The platform's IOMMU driver knows its merged type; the TSM backend's type exists
    // only with the series. Any other type: the driver has no such vIOMMU.
    const bool tsm_type = kernel_.proposedSeries() && v.type == kernel::viommuTypeFor(kernel_.platform(), true);
    if (!tsm_type && v.type != kernel::viommuTypeFor(kernel_.platform(), false)) return -EOPNOTSUPP;
    if (v.data_len != 0 || v.__reserved != 0) return -EINVAL;
    IommuObj* dev = find(v.dev_id, ObjType::Device);
    IommuObj* hwpt = find(v.hwpt_id, ObjType::HwptPaging);
    if (dev == nullptr || hwpt == nullptr) return -ENOENT;
    if (!hwpt->nest_parent) return -EINVAL;
    ++hwpt->users;
    // TSM series: the vIOMMU captures the VM its device was FILE_ADDed to.
    v.out_viommu_id = add(IommuObj{.type = ObjType::Viommu, .hwpt = v.hwpt_id, .kvm = dev->kvm, .viommu_type = v.type});
    c.put(v);
    return 0;
}

long IommufdFile::vdeviceAlloc(IoctlCall& c) {
    auto v = c.get<iommu_vdevice_alloc>();
    IommuObj* viommu = find(v.viommu_id, ObjType::Viommu);
    IommuObj* dev = find(v.dev_id, ObjType::Device);
    if (viommu == nullptr || dev == nullptr) return -ENOENT;
    if (dev->vdevice != 0) return -EEXIST;
    for (const auto& [id, o] : objects_)
        if (o.type == ObjType::Vdevice && o.viommu == v.viommu_id && o.virt_id == v.virt_id) return -EEXIST;
    PciFunction& fn = dev->device->function();
    // On a TSM vIOMMU the vDEVICE binds a TDISP function: the TSM's device context for
    // the TDI, in the VM the vIOMMU captured (pci_tsm_bind). That is not LOCK.
    const bool binds = kernel::isTsmViommuType(viommu->viommu_type) && fn.tdisp;
    if (binds) {
        if (!viommu->kvm) return -ENODEV;  // no VM: FILE_ADD did not precede BIND
        const PciFunction* dsm = kernel_.function(kernel_.dsmOf(fn));
        if (dsm == nullptr || !dsm->tsm_connected) return -EINVAL;  // no TSM link (pci_tsm_bind)
        if (fn.tsm_bound) return -EBUSY;
    }
    ++viommu->users;
    v.out_vdevice_id =
        add(IommuObj{.type = ObjType::Vdevice, .viommu = v.viommu_id, .dev = v.dev_id, .virt_id = v.virt_id});
    objects_.at(v.dev_id).vdevice = v.out_vdevice_id;
    if (binds) fn.tsm_bound = true;
    c.put(v);
    return 0;
}

long IommufdFile::noiommuGetPa(IoctlCall& c) {
    // The merged ioctl's own checks, in its order: a struct smaller than its 40 bytes
    // is EINVAL (iommufd's min_size), unknown flags EOPNOTSUPP, no such IOAS ENOENT.
    // This iommufd has an IOMMU behind it, so there is no physical address to give.
    if (c.arg.size() < sizeof(iommu_ioas_noiommu_get_pa)) return -EINVAL;  // what the caller's size gave
    const auto q = c.get<iommu_ioas_noiommu_get_pa>();
    if (q.flags != 0) return -EOPNOTSUPP;
    if (find(q.ioas_id, ObjType::Ioas) == nullptr) return -ENOENT;
    return -EOPNOTSUPP;
}

}  // namespace tio::sim
