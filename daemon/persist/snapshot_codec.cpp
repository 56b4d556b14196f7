#include "persist/snapshot_codec.hpp"

#include "persist/fd_names.hpp"

namespace tio::persist {
namespace {

using core::DeviceState;
using core::GuestImage;
using core::toString;

UniqueFd take(std::map<std::string, UniqueFd>& fds, const std::string& name) {
    auto it = fds.find(name);
    if (it == fds.end()) return {};
    UniqueFd fd = std::move(it->second);
    fds.erase(it);
    return fd;
}

}  // namespace

v1::GuestSnapshot encode(const core::Guest& guest, std::string_view backend) {
    v1::GuestSnapshot s;
    s.set_format_version(1);
    s.set_name(guest.config().name);
    s.set_platform(std::string(toString(guest.config().platform)));
    s.set_backend(std::string(backend));
    s.set_state(std::string(toString(guest.state())));
    if (const auto* vm = guest.vm()) {
        s.set_vm_type(std::string(toString(vm->type)));
        s.set_ioas_id(guest.ioasId());
        s.set_hwpt_id(guest.hwptId());
        s.set_memory_model(std::string(toString(vm->model)));
        if (vm->gmem_map_file) s.set_gmem_map_file(*vm->gmem_map_file);
        auto* f = s.mutable_iommu_features();
        f->set_map_file(vm->features.map_file);
        f->set_viommu(vm->features.viommu);
        f->set_vdevice(vm->features.vdevice);
        f->set_tsm_request(vm->features.tsm_request);
        f->set_reshape(vm->features.reshape);
        for (const auto& [start, end] : guest.uncertainWindows()) {
            auto* w = s.add_uncertain();
            w->set_gpa(start);
            w->set_size(end - start);
        }
    }
    s.set_next_object_id(guest.nextObjectId());
    for (const auto& [id, d] : guest.devices()) {
        auto* out = s.add_devices();
        out->set_id(id);
        out->set_bdf(d.bdf.toString());
        out->set_vfio_device(d.vfio_name);
        out->set_attached(d.state == DeviceState::Attached);
        out->set_dev_id(d.dev_id);
        out->set_has_vdevice(d.vdevice.has_value());
        if (d.vdevice) {
            out->set_vdevice_id(d.vdevice->kernel_id);
            out->set_viommu(d.vdevice->viommu);
            out->set_virtual_id(d.vdevice->virtual_id);
        }
        out->set_tdi_state(std::string(core::tdiStateName(d)));
        out->set_tsm_connected(d.tsm_connected);
        out->set_dsm(d.dsm.toString());
        if (d.vf_token) out->set_vf_token(std::string(d.vf_token->begin(), d.vf_token->end()));
    }
    for (const auto& [id, v] : guest.viommus()) {
        auto* out = s.add_viommus();
        out->set_id(id);
        out->set_kernel_id(v.kernel_id);
        out->set_type(std::string(kernel::viommuTypeName(v.type)));
        out->set_type_id(v.type);
    }
    for (const auto& [id, m] : guest.memory()) {
        auto* out = s.add_memory();
        out->set_id(id);
        out->set_gpa(m.gpa);
        out->set_size(m.size);
        out->set_offset(m.offset);
        out->set_private_bytes(m.private_bytes);
        out->set_fd_name(memoryFdName(guest, id));
        out->set_shared_fd_name(sharedFdName(guest, id));
        out->set_shared_offset(m.shared_offset);
        out->set_revoked_bytes(m.revoked_bytes);
        for (const auto& run : m.states.all()) {
            auto* range = out->add_ranges();
            range->set_gpa(run.start);
            range->set_size(run.end - run.start);
            range->set_state(std::string(toString(run.value.attr)));
            range->set_revoked(run.value.revoked);
        }
    }
    s.set_conversions(guest.conversions());
    s.set_revocations(guest.revocations());
    return s;
}

GuestImage decode(const v1::GuestSnapshot& s, std::map<std::string, UniqueFd>& fds) {
    GuestImage image;
    image.active = s.state() == toString(core::GuestState::Active);
    if (!image.active) return image;
    image.vm_type = core::parseVmType(s.vm_type());
    image.ioas_id = s.ioas_id();
    image.hwpt_id = s.hwpt_id();
    image.next_object_id = s.next_object_id();
    if (s.has_gmem_map_file()) image.gmem_map_file = s.gmem_map_file();
    if (s.has_iommu_features()) {
        const auto& f = s.iommu_features();
        image.iommu_features = kernel::IommuFeatures{.map_file = f.map_file(),
                                                     .viommu = f.viommu(),
                                                     .vdevice = f.vdevice(),
                                                     .tsm_request = f.tsm_request(),
                                                     .reshape = f.reshape()};
    }
    for (const auto& w : s.uncertain()) {
        if (w.size() != 0 && w.gpa() + w.size() > w.gpa()) image.uncertain.emplace_back(w.gpa(), w.gpa() + w.size());
    }
    image.conversions = s.conversions();
    image.revocations = s.revocations();
    image.vm = take(fds, std::string(kVmFd));
    image.iommufd = take(fds, std::string(kIommufdFd));
    for (const auto& sv : s.viommus()) {
        image.viommus.push_back(core::VIommu{.id = sv.id(), .kernel_id = sv.kernel_id(), .type = sv.type_id()});
    }
    for (const auto& sd : s.devices()) {
        GuestImage::DeviceImage d{.id = sd.id(),
                                  .bdf = sd.bdf(),
                                  .vfio_name = sd.vfio_device(),
                                  .attached = sd.attached(),
                                  .dev_id = sd.dev_id(),
                                  // How a function without TDISP is stored (tdiStateName).
                                  .tdisp_capable = sd.tdi_state() != core::kNoTdispStateName,
                                  .tdi = core::parseTdiState(sd.tdi_state()),
                                  .tsm_connected = sd.tsm_connected(),
                                  .dsm = sd.dsm(),
                                  .vfio = take(fds, objectFdName(kDeviceFd, sd.id())),
                                  .claim = take(fds, objectFdName(kClaimFd, sd.id()))};
        if (sd.has_vdevice()) d.vdevice = core::VDevice{sd.vdevice_id(), sd.viommu(), sd.virtual_id()};
        if (sd.vf_token().size() == 16) {
            d.vf_token.emplace();
            std::copy(sd.vf_token().begin(), sd.vf_token().end(), d.vf_token->begin());
        }
        image.devices.push_back(std::move(d));
    }
    std::map<std::string, int> taken;  // a kept file already handed to a region, for the next one on it
    auto takeShared = [&](const std::string& name) {
        UniqueFd fd = take(fds, name);
        if (fd) {
            taken.emplace(name, fd.get());
        } else if (auto it = taken.find(name); it != taken.end()) {
            if (auto copy = UniqueFd::duplicateOf(it->second)) fd = std::move(*copy);
        }
        return fd;
    };
    for (const auto& sm : s.memory()) {
        const std::string name = sm.fd_name().empty() ? objectFdName(kMemoryFd, sm.id()) : sm.fd_name();
        GuestImage::MemoryImage m{.id = sm.id(),
                                  .gpa = sm.gpa(),
                                  .size = sm.size(),
                                  .offset = sm.offset(),
                                  .gmem = takeShared(name),
                                  .has_shared = !sm.shared_fd_name().empty(),
                                  .shared_offset = sm.shared_offset()};
        if (m.has_shared) m.shared = takeShared(sm.shared_fd_name());
        for (const auto& range : sm.ranges()) {
            const core::PageState st{core::parseMemoryState(range.state()).value_or(core::MemoryState::Shared),
                                     range.revoked()};
            m.runs.push_back({range.gpa(), range.gpa() + range.size(), st});
        }
        image.memory.push_back(std::move(m));
    }
    return image;
}

}  // namespace tio::persist
