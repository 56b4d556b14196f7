#include "dbus/object_views.hpp"

namespace tio::dbus {
namespace {

std::vector<ObjectPathValue> paths(const std::vector<std::string>& v) {
    std::vector<ObjectPathValue> out;
    out.reserve(v.size());
    for (const auto& p : v) out.push_back({p});
    return out;
}

// The Kernel property: each optional kernel feature the daemon probed (none before
// a VM is attached; the guest_memfd mapping once the first guest_memfd came).
FeatureMap kernelFeatures(const core::VmContext* vm) {
    if (vm == nullptr) return {};
    const kernel::IommuFeatures& f = vm->features;
    FeatureMap out{{"in-place-conversion", vm->model == core::MemoryModel::InPlace},
                   {"map-file", f.map_file},
                   {"ioas-reshape", f.reshape},
                   {"viommu", f.viommu},
                   {"vdevice", f.vdevice},
                   {"tsm-bind", f.tsm_request},  // RFC v7 binds with the vDEVICE: one feature
                   {"tsm-request", f.tsm_request}};
    if (vm->gmem_map_file) out.emplace("guest-memfd-map-file", *vm->gmem_map_file);
    return out;
}

}  // namespace

std::string devicePath(const core::Device& d) { return std::string(kDevicePathPrefix) + d.bdf.objectName(); }
std::string viommuPath(core::ObjectId id) { return std::string(kViommuPathPrefix) + std::to_string(id); }
std::string memoryPath(core::ObjectId id) { return std::string(kMemoryPathPrefix) + std::to_string(id); }

std::optional<core::ObjectId> idFromPath(std::string_view path, std::string_view prefix) {
    if (!path.starts_with(prefix)) return std::nullopt;
    const std::string_view tail = path.substr(prefix.size());
    if (tail.empty() || tail.size() > 19 || tail[0] == '0') return std::nullopt;
    core::ObjectId id = 0;
    for (char c : tail) {
        if (c < '0' || c > '9') return std::nullopt;
        id = id * 10 + static_cast<core::ObjectId>(c - '0');
    }
    return id;
}

Result<core::ObjectId> objectId(std::string_view path, std::string_view prefix, std::string_view noun) {
    const auto id = idFromPath(path, prefix);
    if (!id) return fail(Code::NotFound, "no such " + std::string(noun) + " in this guest");
    return *id;
}

std::optional<core::ObjectId> deviceFromPath(const core::Guest& guest, std::string_view path) {
    if (!path.starts_with(kDevicePathPrefix)) return std::nullopt;
    const std::string_view element = path.substr(kDevicePathPrefix.size());
    // 0000_3a_00_0 -> 0000:3a:00.0 for the strict parser; then the element must be
    // exactly what that BDF prints as, so no other separator is an alias.
    if (element.size() != 12) return std::nullopt;
    std::string text(element);
    text[4] = ':';
    text[7] = ':';
    text[10] = '.';
    const auto bdf = Bdf::parse(text);
    if (!bdf || bdf->objectName() != element) return std::nullopt;
    return guest.findDevice(*bdf);
}

Views buildViews(const core::Guest& guest, const ServiceFacts& facts) {
    Views v;
    std::vector<std::string> devices, viommus, regions;
    std::uint64_t private_bytes = 0, shared_bytes = 0;
    std::map<core::ObjectId, std::vector<ObjectPathValue>> vdevs_of;
    for (const auto& [id, d] : guest.devices()) {
        const std::string path = devicePath(d);
        devices.push_back(path);
        if (d.vdevice) vdevs_of[d.vdevice->viommu].push_back({path});
        v[path] = ObjectView{kDeviceIface,
                             {{"Bdf", d.bdf.toString()},
                              {"VfioDevice", d.vfio_name},
                              {"Attached", d.state == core::DeviceState::Attached},
                              {"VIommu", ObjectPathValue{d.vdevice ? viommuPath(d.vdevice->viommu) : "/"}},
                              {"VirtualId", std::uint64_t{d.vdevice ? d.vdevice->virtual_id : 0}},
                              {"HasVDevice", d.vdevice.has_value()},
                              {"TdiState", std::string(core::tdiStateName(d))},
                              {"TsmConnected", d.tsm_connected},
                              {"Dsm", d.dsm.toString()}}};
    }
    for (const auto& [id, vi] : guest.viommus()) {
        const std::string path = viommuPath(id);
        viommus.push_back(path);
        v[path] = ObjectView{kViommuIface,
                             {{"Id", std::uint32_t{vi.kernel_id}},
                              {"Type", std::string(kernel::viommuTypeName(vi.type))},
                              {"VDevices", vdevs_of[id]}}};
    }
    for (const auto& [id, m] : guest.memory()) {
        const std::string path = memoryPath(id);
        regions.push_back(path);
        private_bytes += m.private_bytes;
        shared_bytes += m.size - m.private_bytes;
        v[path] = ObjectView{kMemoryIface,
                             {{"Gpa", std::uint64_t{m.gpa}},
                              {"Size", std::uint64_t{m.size}},
                              {"Offset", std::uint64_t{m.offset}},
                              {"PrivateBytes", std::uint64_t{m.private_bytes}},
                              {"SharedBytes", std::uint64_t{m.size - m.private_bytes}},
                              {"Revoked", m.revoked_bytes != 0},
                              {"SharedMapped", guest.mappingRules(m).shared_dma},
                              {"PinnedBytes", guest.mappedBytes(m)}}};
    }
    const auto* vm = guest.vm();
    v[kRootPath] = ObjectView{kGuestIface,
                              {{"Name", guest.config().name},
                               {"Platform", std::string(toString(guest.config().platform))},
                               {"Backend", facts.backend},
                               {"MemoryModel", vm != nullptr ? std::string(core::toString(vm->model)) : std::string()},
                               {"Kernel", kernelFeatures(vm)},
                               {"VmType", vm != nullptr ? std::string(core::toString(vm->type)) : std::string()},
                               {"State", std::string(core::toString(guest.state()))},
                               {"Devices", paths(devices)},
                               {"VIommus", paths(viommus)},
                               {"MemoryRegions", paths(regions)},
                               {"PrivateBytes", private_bytes},
                               {"SharedBytes", shared_bytes},
                               {"Conversions", guest.conversions()},
                               {"Revocations", guest.revocations()},
                               {"Clients", facts.clients}}};
    return v;
}

int appendProperty(sd_bus_message* reply, const PropertyValue& value) {
    return std::visit(
        [&](const auto& x) -> int {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, std::string>) return sd_bus_message_append(reply, "s", x.c_str());
            else if constexpr (std::is_same_v<T, std::uint64_t>) return sd_bus_message_append(reply, "t", x);
            else if constexpr (std::is_same_v<T, std::uint32_t>) return sd_bus_message_append(reply, "u", x);
            else if constexpr (std::is_same_v<T, bool>) return sd_bus_message_append(reply, "b", static_cast<int>(x));
            else if constexpr (std::is_same_v<T, ObjectPathValue>)
                return sd_bus_message_append(reply, "o", x.path.c_str());
            else if constexpr (std::is_same_v<T, FeatureMap>) {
                int r = sd_bus_message_open_container(reply, 'a', "{sb}");
                for (const auto& [name, present] : x) {
                    if (r >= 0) r = sd_bus_message_append(reply, "{sb}", name.c_str(), static_cast<int>(present));
                }
                if (r >= 0) r = sd_bus_message_close_container(reply);
                return r;
            } else {
                int r = sd_bus_message_open_container(reply, 'a', "o");
                for (const auto& p : x) {
                    if (r >= 0) r = sd_bus_message_append(reply, "o", p.path.c_str());
                }
                if (r >= 0) r = sd_bus_message_close_container(reply);
                return r;
            }
        },
        value);
}

}  // namespace tio::dbus
