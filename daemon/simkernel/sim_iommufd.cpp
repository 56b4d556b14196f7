// Simulated /dev/iommu: the object table and the rules of kernel-uapi.md 1.4/1.5:
// ids from 1, `users` references, EBUSY on destroying a referenced object, DEVICE
// objects owned by VFIO, no partial unmap, nest-parent HWPT, vIOMMU, one vDEVICE per
// device, virt_id unique per vIOMMU, tombstones on device unbind, and the proposed
// TSM ioctls, and the proposed hitless RESHAPE. Every HWPT has a real page table
// (io_page_table.hpp) kept in line with its IOAS's areas and page-size limits.
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <fcntl.h>

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

namespace {

// The simulated IOMMU aperture (52-bit, room for TDX's shared bit 51) minus the x86
// MSI window, which iommufd reports as a reserved region.
constexpr std::uint64_t kApertureLast = (1ULL << 52U) - 1;
constexpr std::uint64_t kMsiStart = 0xfee00000ULL;
constexpr std::uint64_t kMsiLast = 0xfeefffffULL;

constexpr std::uint64_t kEverything = UINT64_MAX;

}  // namespace

dev_t IommufdFile::rdev() const { return makedev(10, 123); }

IommuObj* IommufdFile::find(std::uint32_t id, ObjType type) {
    auto it = objects_.find(id);
    if (it == objects_.end() || it->second.type != type) return nullptr;
    return &it->second;
}

const IommuObj* IommufdFile::find(std::uint32_t id, ObjType type) const {
    return const_cast<IommufdFile*>(this)->find(id, type);
}

IoPageTable::Segments IommufdFile::layout(const IommuObj& ioas, std::uint64_t s, std::uint64_t e) const {
    IoPageTable::Segments out;
    auto it = ioas.areas.upper_bound(s);
    if (it != ioas.areas.begin() && std::prev(it)->first + std::prev(it)->second.length > s) --it;
    for (; it != ioas.areas.end() && it->first < e; ++it) {
        const std::uint64_t as = it->first;
        const std::uint64_t ae = as + it->second.length;
        const IoArea& area = it->second;
        const std::uint64_t delta = area.start - as;
        // An area is cut into pieces where the page-size limit changes.
        auto piece = [&](std::uint64_t ps, std::uint64_t pe, unsigned limit) {
            if (pe <= s || ps >= e) return;
            out.emplace(ps, Segment{.end = pe,
                                    .file = area.file_key,
                                    .file_delta = delta,
                                    .writeable = area.writeable,
                                    .max_shift = usableShift(delta, limit)});
        };
        // Only the pieces overlapping [s, e): from the piece containing s to the one
        // containing e - 1 (work per change, not per area).
        const std::uint64_t from = std::max(as, ioas.limits.pieceStart(std::max(as, s)));
        const std::uint64_t to = std::min(ae, ioas.limits.pieceEnd(std::min(ae, e) - 1));
        std::uint64_t at = from;
        ioas.limits.forEach(from, to, [&](std::uint64_t ls, std::uint64_t le, unsigned shift) {
            if (at < ls) piece(at, ls, kShift1G);
            piece(ls, le, shift);
            at = le;
        });
        if (at < to) piece(at, to, kShift1G);
    }
    return out;
}

void IommufdFile::sync(std::uint32_t ioas_id, std::uint64_t s, std::uint64_t e, bool restructure) {
    const IommuObj& ioas = objects_.at(ioas_id);
    for (auto& [id, hwpt] : objects_) {
        if (hwpt.type != ObjType::HwptPaging || hwpt.ioas != ioas_id) continue;
        // Widen until neither the old table nor the new layout has a segment crossing an end.
        std::uint64_t ws = s;
        std::uint64_t we = e;
        IoPageTable::Segments fresh;
        for (;;) {
            fresh = layout(ioas, ws, we);
            std::uint64_t ns = ws;
            std::uint64_t ne = we;
            if (!fresh.empty()) {
                ns = std::min(ns, fresh.begin()->first);
                ne = std::max(ne, std::prev(fresh.end())->second.end);
            }
            std::tie(ns, ne) = hwpt.table.widen(ns, ne);
            if (ns == ws && ne == we) break;
            ws = ns;
            we = ne;
        }
        const TableChange ch = hwpt.table.replace(ws, we, fresh, restructure);
        kernel_.count("iopte_map", ch.added.total() * (restructure ? 0 : 1));
        kernel_.count("iopte_unmap", ch.removed.total() * (restructure ? 0 : 1));
        kernel_.count("iopte_split", ch.splits);
        kernel_.count("iopte_merge", ch.merges);
        kernel_.count("pages_unmapped", ch.pages_unmapped);
        // The simulator's own consistency: a hitless operation that unmapped or
        // retargeted a page would be a bug here, and the tests look at this counter.
        if (ch.retargeted_pages != 0 || (restructure && (ch.pages_mapped != 0 || ch.pages_unmapped != 0))) {
            kernel_.count("unsafe_replacements");
        }
        if (ch.pages_unmapped != 0 || ch.splits != 0 || ch.merges != 0) kernel_.count("iotlb_flush");
    }
}

void IommufdFile::dropArea(IoArea& area) {
    if (area.gmem) --area.gmem->pinned_;
}

std::uint32_t IommufdFile::add(IommuObj obj) {
    const std::uint32_t id = next_id_++;
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
    if (req == IOMMU_IOAS_UNMAP) return unmap(c);
    if (req == IOMMU_HWPT_ALLOC) return hwptAlloc(c);
    if (req == IOMMU_GET_HW_INFO) return hwInfo(c);
    if (req == IOMMU_VIOMMU_ALLOC) return viommuAlloc(c);
    if (req == IOMMU_VDEVICE_ALLOC) return vdeviceAlloc(c);
    if (req == IOMMU_VDEVICE_TSM_OP) return tsmOp(c);
    if (req == IOMMU_VDEVICE_TSM_REQ) return tsmReq(c);
    if (req == IOMMU_IOAS_RESHAPE) return reshape(c);
    // IOMMU_IOAS_MAP by user VA cannot cross a process boundary; the daemon never uses it
    // (architecture.md section 6: memory is mapped from files only).
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
            // Destroying a vDEVICE unbinds its TDI (proposed TSM series).
            IommuObj& dev = objects_.at(o.dev);
            PciFunction& fn = dev.device->function();
            if (fn.tdi != TdiState::Unlocked) kernel_.setTdi(fn, TdiState::Unlocked);
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

long IommufdFile::iovaRanges(IoctlCall& c) {
    auto q = c.get<iommu_ioas_iova_ranges>();
    if (q.__reserved != 0) return -EOPNOTSUPP;
    if (find(q.ioas_id, ObjType::Ioas) == nullptr) return -ENOENT;
    const iommu_iova_range ranges[2] = {{0, kMsiStart - 1}, {kMsiLast + 1, kApertureLast}};
    const std::uint32_t capacity = q.num_iovas;
    q.num_iovas = 2;
    q.out_iova_alignment = kPageSize;
    c.put(q);
    if (capacity < 2) return -EMSGSIZE;
    std::memcpy(c.bufs[0].data(), ranges, sizeof ranges);
    return 0;
}

long IommufdFile::mapFile(IoctlCall& c) {
    auto m = c.get<iommu_ioas_map_file>();
    constexpr std::uint32_t kKnown = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
    if ((m.flags & ~kKnown) != 0) return -EOPNOTSUPP;
    if ((m.flags & (IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE)) == 0 || m.length == 0) return -EINVAL;
    const auto file_end = checkedEnd(m.start, m.length);
    if (!file_end) return -EOVERFLOW;
    IommuObj* ioas = find(m.ioas_id, ObjType::Ioas);
    if (ioas == nullptr) return -ENOENT;
    if (c.fds.empty()) return -EBADF;
    if (!pageAligned(m.start) || !pageAligned(m.length)) return -EINVAL;

    IoArea area{.length = m.length, .start = m.start, .writeable = (m.flags & IOMMU_IOAS_MAP_WRITEABLE) != 0};
    if (auto* gmem = dynamic_cast<GuestMemfdFile*>(kernel_.resolve(c.fds.front().get()))) {
        // guest_memfd by file + offset: the RFC the architecture builds on (kernel-uapi.md 5.4).
        if (*file_end > gmem->size_) return -EINVAL;
        area.gmem = FileRef<GuestMemfdFile>(gmem);
        area.file_key = reinterpret_cast<std::uintptr_t>(gmem);
    } else if (kernel_.resolve(c.fds.front().get()) != nullptr) {
        return -EINVAL;  // another simulator file (a VM, an iommufd...): not mappable memory
    } else {
        // A real memfd (shmem): the kind upstream MAP_FILE accepts. Seals prove it is one.
        struct stat st {};
        if (::fstat(c.fds.front().get(), &st) < 0 || !S_ISREG(st.st_mode) ||
            ::fcntl(c.fds.front().get(), F_GET_SEALS) < 0) {
            return -EINVAL;
        }
        if (static_cast<std::uint64_t>(st.st_size) < *file_end) return -EINVAL;
        area.host_file = std::move(c.fds.front());
        area.file_key = static_cast<std::uintptr_t>(st.st_ino) | (1ULL << 63U);
    }

    if ((m.flags & IOMMU_IOAS_MAP_FIXED_IOVA) == 0) {
        // Automatic IOVA: the lowest page-aligned gap after the last area.
        m.iova = ioas->areas.empty() ? kPageSize : ioas->areas.rbegin()->first + ioas->areas.rbegin()->second.length;
    }
    const auto end = checkedEnd(m.iova, m.length);
    if (!end) return -EOVERFLOW;
    if (!pageAligned(m.iova)) return -EINVAL;
    if (*end - 1 > kApertureLast || (m.iova <= kMsiLast && *end - 1 >= kMsiStart)) return -EADDRINUSE;
    auto next = ioas->areas.lower_bound(m.iova);
    if (next != ioas->areas.end() && next->first < *end) return -EEXIST;
    if (next != ioas->areas.begin()) {
        auto prev = std::prev(next);
        if (prev->first + prev->second.length > m.iova) return -EEXIST;
    }
    if (area.gmem) {
        ++area.gmem->pinned_;
        area.gmem->punched_.erase(m.start, *file_end);  // pinning allocates the pages again
    }
    ioas->areas.emplace(m.iova, std::move(area));
    sync(m.ioas_id, m.iova, *end, false);
    c.put(m);
    return 0;
}

long IommufdFile::unmap(IoctlCall& c) {
    auto u = c.get<iommu_ioas_unmap>();
    IommuObj* ioas = find(u.ioas_id, ObjType::Ioas);
    if (ioas == nullptr) return -ENOENT;
    // iova 0, length U64_MAX means everything; otherwise an overflow is EOVERFLOW.
    std::uint64_t last = UINT64_MAX;
    if (!(u.iova == 0 && u.length == UINT64_MAX)) {
        const auto end = checkedEnd(u.iova, u.length);
        if (u.length == 0) return -EINVAL;
        if (!end) return -EOVERFLOW;
        last = *end - 1;
    }
    // The range must be a superset of whole areas: an area crossing either edge is EINVAL.
    std::uint64_t unmapped = 0;
    auto first = ioas->areas.upper_bound(u.iova);
    if (first != ioas->areas.begin()) --first;
    for (auto it = first; it != ioas->areas.end() && it->first <= last; ++it) {
        const std::uint64_t alast = it->first + it->second.length - 1;
        if (alast < u.iova) continue;
        if (it->first < u.iova || alast > last) return -EINVAL;
        unmapped += it->second.length;
    }
    if (unmapped == 0) return -ENOENT;
    for (auto it = ioas->areas.lower_bound(u.iova); it != ioas->areas.end() && it->first <= last;) {
        dropArea(it->second);
        it = ioas->areas.erase(it);
    }
    sync(u.ioas_id, u.iova, last == kEverything ? kEverything : last + 1, false);
    u.length = unmapped;
    c.put(u);
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
    h.out_hwpt_id = add(IommuObj{.type = ObjType::HwptPaging,
                                 .ioas = h.pt_id,
                                 .nest_parent = (h.flags & IOMMU_HWPT_ALLOC_NEST_PARENT) != 0});
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
    v.out_vdevice_id = add(IommuObj{.type = ObjType::Vdevice, .viommu = v.viommu_id, .dev = v.dev_id, .virt_id = v.virt_id});
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
            const std::string report = "TDISP interface report: " + fn.bdf.toString() + " tdi " +
                                       std::to_string(vdev->virt_id);
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

const IoPageTable* IommufdFile::tableOf(std::uint32_t dev_id) const {
    const IommuObj* dev = find(dev_id, ObjType::Device);
    if (dev == nullptr || dev->hwpt == 0) return nullptr;
    return &objects_.at(dev->hwpt).table;
}

std::uint64_t IommufdFile::areaCount(std::uint32_t dev_id) const {
    const IommuObj* dev = find(dev_id, ObjType::Device);
    if (dev == nullptr || dev->hwpt == 0) return 0;
    return objects_.at(objects_.at(dev->hwpt).ioas).areas.size();
}

const IoArea* IommufdFile::areaAt(std::uint32_t dev_id, std::uint64_t iova) const {
    const IommuObj* dev = find(dev_id, ObjType::Device);
    if (dev == nullptr || dev->hwpt == 0) return nullptr;
    const IommuObj& ioas = objects_.at(objects_.at(dev->hwpt).ioas);
    auto it = ioas.areas.upper_bound(iova);
    if (it == ioas.areas.begin()) return nullptr;
    --it;
    return iova < it->first + it->second.length ? &it->second : nullptr;
}

std::uint64_t IommufdFile::revokeAreasOf(const GuestMemfdFile* gmem, std::uint64_t start, std::uint64_t end) {
    std::uint64_t revoked = 0;
    for (auto& [id, o] : objects_) {
        if (o.type != ObjType::Ioas) continue;
        for (auto it = o.areas.begin(); it != o.areas.end();) {
            const IoArea& a = it->second;
            if (a.gmem.get() != gmem || a.start >= end || a.start + a.length <= start) {
                ++it;
                continue;
            }
            const std::uint64_t iova = it->first;
            const std::uint64_t length = a.length;
            dropArea(it->second);
            it = o.areas.erase(it);
            sync(id, iova, iova + length, false);
            ++revoked;
        }
    }
    return revoked;
}

long IommufdFile::reshape(IoctlCall& c) {
    const auto r = c.get<iommu_ioas_reshape>();
    if (r.flags != 0) return -EOPNOTSUPP;
    IommuObj* ioas = find(r.ioas_id, ObjType::Ioas);
    if (ioas == nullptr) return -ENOENT;
    if (!pageAligned(r.iova)) return -EINVAL;
    auto& areas = ioas->areas;
    if (r.op == IOMMU_IOAS_RESHAPE_SPLIT || r.op == IOMMU_IOAS_RESHAPE_JOIN) {
        if (r.length != 0 || r.max_pgsize != 0) return -EINVAL;
        auto next = areas.lower_bound(r.iova);  // the area starting at iova, if any
        const bool at_boundary = next != areas.end() && next->first == r.iova;
        auto prev = next == areas.begin() ? areas.end() : std::prev(next);
        const bool prev_covers = prev != areas.end() && prev->first + prev->second.length > r.iova;
        const bool prev_touches = prev != areas.end() && prev->first + prev->second.length == r.iova;
        if (r.op == IOMMU_IOAS_RESHAPE_SPLIT) {
            if (at_boundary) return 0;  // already an area boundary
            if (!prev_covers) return -ENOENT;
            IoArea& left = prev->second;
            const std::uint64_t cut = r.iova - prev->first;
            IoArea right{.length = left.length - cut,
                         .start = left.start + cut,
                         .writeable = left.writeable,
                         .file_key = left.file_key,
                         .gmem = left.gmem};
            if (left.host_file) {
                right.host_file = UniqueFd(::fcntl(left.host_file.get(), F_DUPFD_CLOEXEC, 0));
                if (!right.host_file) return -EMFILE;
            }
            if (right.gmem) ++right.gmem->pinned_;
            const std::uint64_t whole_end = prev->first + left.length;
            left.length = cut;
            areas.emplace(r.iova, std::move(right));
            sync(r.ioas_id, prev->first, whole_end, true);
            return 0;
        }
        if (!at_boundary || !prev_touches) return -ENOENT;
        IoArea& left = prev->second;
        const IoArea& right = next->second;
        if (left.file_key != right.file_key || left.start + left.length != right.start ||
            left.writeable != right.writeable) {
            return -EINVAL;
        }
        const std::uint64_t whole_end = r.iova + right.length;
        left.length += right.length;
        dropArea(next->second);
        areas.erase(next);
        sync(r.ioas_id, prev->first, whole_end, true);
        return 0;
    }
    if (r.op == IOMMU_IOAS_RESHAPE_LIMIT) {
        const auto end = checkedEnd(r.iova, r.length);
        if (r.length == 0 || !end || !pageAligned(r.length)) return -EINVAL;
        if (*end - 1 > kApertureLast) return -EINVAL;
        if (r.max_pgsize == 0 || r.max_pgsize == (1ULL << kShift1G)) {
            ioas->limits.erase(r.iova, *end);  // the page table's largest is the default
        } else if (r.max_pgsize == (1ULL << kShift2M) || r.max_pgsize == (1ULL << kShift4K)) {
            ioas->limits.assign(r.iova, *end, static_cast<unsigned>(std::countr_zero(r.max_pgsize)));
        } else {
            return -EINVAL;
        }
        sync(r.ioas_id, r.iova, *end, true);
        return 0;
    }
    return -EOPNOTSUPP;
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
