#include "core/snapshot.hpp"

namespace tio::core {

v1::GuestSnapshot snapshot(const Guest& guest, std::string_view backend) {
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
        s.set_has_kvm_vfio(vm->kvm_vfio.has_value());
    }
    s.set_next_object_id(guest.nextObjectId());
    s.set_next_memslot(guest.nextMemslot());
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
        out->set_tdi_state(std::string(tdiStateName(d)));
        out->set_tsm_connected(d.tsm_connected);
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
        out->set_memslot(m.memslot);
        out->set_private_bytes(m.private_bytes);
        out->set_fd_name(guest.memoryFdName(id));
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

}  // namespace tio::core
