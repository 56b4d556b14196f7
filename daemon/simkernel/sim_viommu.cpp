// Simulated /dev/iommu, the vIOMMU and vDEVICE objects (viommu.c): one vDEVICE per
// device, virt_id unique per vIOMMU, and the proposed TSM ioctls with the TDISP state.
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

long IommufdFile::viommuAlloc(IoctlCall& c) {
    auto v = c.get<iommu_viommu_alloc>();
    if (v.flags != 0 || v.type == IOMMU_VIOMMU_TYPE_DEFAULT) return -EOPNOTSUPP;
    if (v.type != kernel::viommuTypeFor(kernel_.platform())) return -EOPNOTSUPP;
    if (v.data_len != 0 || v.__reserved != 0) return -EINVAL;
    IommuObj* dev = find(v.dev_id, ObjType::Device);
    IommuObj* hwpt = find(v.hwpt_id, ObjType::HwptPaging);
    if (dev == nullptr || hwpt == nullptr) return -ENOENT;
    if (!hwpt->nest_parent) return -EINVAL;
    ++hwpt->users;
    // Proposed TSM series: the vIOMMU captures the VM its device was FILE_ADDed to.
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
    ++viommu->users;
    v.out_vdevice_id =
        add(IommuObj{.type = ObjType::Vdevice, .viommu = v.viommu_id, .dev = v.dev_id, .virt_id = v.virt_id});
    objects_.at(v.dev_id).vdevice = v.out_vdevice_id;
    c.put(v);
    return 0;
}

long IommufdFile::tsmOp(IoctlCall& c) {
    const auto op = c.get<iommu_vdevice_tsm_op>();
    if (op.flags != 0) return -EOPNOTSUPP;
    IommuObj* vdev = find(op.vdevice_id, ObjType::Vdevice);
    if (vdev == nullptr) return -ENOENT;
    const IommuObj& viommu = objects_.at(vdev->viommu);
    if (!viommu.kvm) return -ENODEV;  // no VM: FILE_ADD did not precede BIND
    PciFunction& fn = objects_.at(vdev->dev).device->function();
    if (op.type == IOMMU_VDEVICE_TSM_BIND) {
        if (!fn.tdisp) return -ENXIO;
        const PciFunction* dsm = kernel_.function(fn.bdf.dsm());
        if (dsm == nullptr || !dsm->tsm_connected) return -EINVAL;  // no TSM context (pci_tsm_bind)
        if (fn.tdi == TdiState::Unlocked) kernel_.setTdi(fn, TdiState::Locked);
        return 0;  // already bound to this VM: idempotent
    }
    if (op.type == IOMMU_VDEVICE_TSM_UNBIND) {
        kernel_.setTdi(fn, TdiState::Unlocked);  // pci_tsm_unbind always succeeds
        return 0;
    }
    return -EINVAL;
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

long IommufdFile::tsmReq(IoctlCall& c) {
    const auto q = c.get<iommu_vdevice_tsm_req>();
    if (q.__reserved != 0) return -EOPNOTSUPP;
    IommuObj* vdev = find(q.vdevice_id, ObjType::Vdevice);
    if (vdev == nullptr) return -ENOENT;
    PciFunction& fn = objects_.at(vdev->dev).device->function();
    const auto& req = c.bufs[0];
    auto& resp = c.bufs[1];
    if (req.empty()) return -EINVAL;
    std::vector<std::uint8_t> answer;
    if (q.scope == IOMMU_VDEVICE_TSM_REQ_PCI_STATE_CHANGE) {
        if (req[0] == kTdispRun) {
            // START_INTERFACE is legal only from CONFIG_LOCKED (TDISP).
            if (fn.tdi != TdiState::Locked) return -EINVAL;
            kernel_.setTdi(fn, TdiState::Run);
        } else if (req[0] == kTdispConfigUnlocked) {
            kernel_.setTdi(fn, TdiState::Unlocked);
        } else {
            return -EINVAL;
        }
        answer.push_back(req[0]);
    } else if (q.scope == IOMMU_VDEVICE_TSM_REQ_PCI_INFO) {
        if (req[0] == kTdispGetDeviceInterfaceState) {
            answer.push_back(static_cast<std::uint8_t>(fn.tdi));
        } else if (req[0] == kTdispGetDeviceInterfaceReport) {
            if (fn.tdi != TdiState::Locked && fn.tdi != TdiState::Run) return -EINVAL;
            const std::string report =
                "TDISP interface report: " + fn.bdf.toString() + " tdi " + std::to_string(vdev->virt_id);
            answer.assign(report.begin(), report.end());
        } else {
            return -EINVAL;
        }
    } else if (q.scope == IOMMU_VDEVICE_TSM_REQ_PCI_DEBUG_READ || q.scope == IOMMU_VDEVICE_TSM_REQ_PCI_DEBUG_WRITE) {
        return -EPERM;
    } else {
        return -EINVAL;
    }
    if (answer.size() > resp.size()) return -EMSGSIZE;
    std::copy(answer.begin(), answer.end(), resp.begin());
    return static_cast<long>(resp.size() - answer.size());  // residue
}

}  // namespace tio::sim
