#include "dbus/guest_service.hpp"

#include <sys/socket.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <cerrno>

#include "dbus/adaptors.hpp"

namespace tio::dbus {

namespace {

constexpr std::string_view kDevicePrefix = "/org/tio/Guest1/device/";

// sd-bus find callback for the child fallback vtables: the object exists when the
// current model has it (machined does the same with machine_object_find).
int findObject(sd_bus*, const char* path, const char* iface, void* userdata, void** found, sd_bus_error*) {
    auto* svc = static_cast<GuestService*>(userdata);
    const ObjectView* v = svc->view(path);
    if (v == nullptr || v->iface != iface) return 0;
    *found = svc;
    return 1;
}

int enumerateChildren(sd_bus*, const char*, void* userdata, char*** nodes, sd_bus_error*) {
    auto* svc = static_cast<GuestService*>(userdata);
    const auto paths = svc->childPaths();
    char** out = static_cast<char**>(calloc(paths.size() + 1, sizeof(char*)));
    if (out == nullptr) return -ENOMEM;
    for (std::size_t i = 0; i < paths.size(); ++i) {
        out[i] = strdup(paths[i].c_str());
        if (out[i] == nullptr) {
            for (std::size_t j = 0; j < i; ++j) free(out[j]);
            free(out);
            return -ENOMEM;
        }
    }
    *nodes = out;
    return 0;
}

std::vector<ObjectPathValue> paths(const std::vector<std::string>& v) {
    std::vector<ObjectPathValue> out;
    for (const auto& p : v) out.push_back({p});
    return out;
}

}  // namespace

GuestService::GuestService(core::Guest& guest, core::Policy policy, std::string backend, audit::AuditLog audit)
    : guest_(guest), policy_(std::move(policy)), backend_(std::move(backend)), audit_(std::move(audit)) {
    published_ = buildViews();
}

void GuestService::record(std::string event, std::string_view method, const Caller* who, std::string object,
                          std::string detail, std::string error) {
    tio::v1::AuditRecord r;
    r.set_guest(guest_.config().name);
    r.set_event(std::move(event));
    r.set_method(std::string(method));
    if (who != nullptr) {
        r.set_has_peer(true);
        r.set_peer_uid(who->uid);
        r.set_peer_pid(static_cast<std::uint32_t>(who->pid));
        r.set_door(who->door == Door::Vmm ? "vmm" : "admin");
    }
    r.set_object(std::move(object));
    r.set_detail(std::move(detail));
    r.set_error(std::move(error));
    audit_.append(std::move(r));
}

int GuestService::attach(sd_bus* bus, Door door) {
    int r = sd_bus_add_object_vtable(bus, nullptr, kRootPath, kGuestIface, guestVtable(), this);
    if (r >= 0) r = sd_bus_add_fallback_vtable(bus, nullptr, "/org/tio/Guest1/device", kDeviceIface, deviceVtable(),
                                               findObject, this);
    if (r >= 0) r = sd_bus_add_fallback_vtable(bus, nullptr, "/org/tio/Guest1/viommu", kViommuIface, viommuVtable(),
                                               findObject, this);
    if (r >= 0) r = sd_bus_add_fallback_vtable(bus, nullptr, "/org/tio/Guest1/memory", kMemoryIface, memoryVtable(),
                                               findObject, this);
    if (r >= 0) r = sd_bus_add_node_enumerator(bus, nullptr, kRootPath, enumerateChildren, this);
    if (r >= 0) r = sd_bus_add_object_manager(bus, nullptr, kRootPath);
    if (r < 0) {
        spdlog::error("cannot serve the object tree on a connection: {}", std::strerror(-r));
        return r;
    }
    connections_.push_back({bus, door});
    if (door == Door::Vmm) publish();  // Clients changed
    return 0;
}

void GuestService::detached(sd_bus* bus) {
    const auto before = vmmClients();
    std::erase_if(connections_, [&](const Connection& c) { return c.bus == bus; });
    if (before > 0 && vmmClients() == 0 && guest_.state() != core::GuestState::Empty) {
        // The VMM's last connection closed: unwind leaf-first (architecture.md 5).
        record("teardown", {}, nullptr, {}, "the last VMM connection closed");
        for (const auto& e : guest_.teardown()) spdlog::warn("teardown step failed: {}, ignoring", e.message);
    }
    publish();
}

std::size_t GuestService::vmmClients() const {
    return static_cast<std::size_t>(
        std::count_if(connections_.begin(), connections_.end(), [](const auto& c) { return c.door == Door::Vmm; }));
}

Result<Caller> GuestService::identify(sd_bus_message* m, Door door) const {
    Caller c;
    c.door = door;
    sd_bus* bus = sd_bus_message_get_bus(m);
    if (door == Door::Vmm) {
        // The guest socket: the kernel's SO_PEERCRED/SO_PEERGROUPS of the connection.
        ucred cred{};
        socklen_t len = sizeof cred;
        if (::getsockopt(sd_bus_get_fd(bus), SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
            return fail(Code::AccessDenied, "cannot verify the caller");
        }
        c.uid = cred.uid;
        c.pid = cred.pid;
        gid_t groups[64];
        socklen_t glen = sizeof groups;
        if (::getsockopt(sd_bus_get_fd(bus), SOL_SOCKET, SO_PEERGROUPS, groups, &glen) == 0) {
            c.groups.assign(groups, groups + glen / sizeof(gid_t));
        }
        c.groups.push_back(cred.gid);
        return c;
    }
    // The system bus: credentials the bus daemon vouches for. Anything sd-bus had to
    // read from /proc (augmented) is refused: it is racy (systemd 0f51442).
    sd_bus_creds* creds = nullptr;
    const std::uint64_t mask = SD_BUS_CREDS_EUID | SD_BUS_CREDS_PID | SD_BUS_CREDS_SUPPLEMENTARY_GIDS;
    if (sd_bus_query_sender_creds(m, mask, &creds) < 0) return fail(Code::AccessDenied, "cannot verify the caller");
    uid_t euid = 0;
    const bool augmented = (sd_bus_creds_get_augmented_mask(creds) & SD_BUS_CREDS_EUID) != 0;
    const int r = sd_bus_creds_get_euid(creds, &euid);
    if (r >= 0 && !augmented) c.uid = euid;
    pid_t pid = 0;
    if (sd_bus_creds_get_pid(creds, &pid) >= 0) c.pid = pid;
    const gid_t* gids = nullptr;
    const int n = sd_bus_creds_get_supplementary_gids(creds, &gids);
    if (n > 0 && (sd_bus_creds_get_augmented_mask(creds) & SD_BUS_CREDS_SUPPLEMENTARY_GIDS) == 0) {
        c.groups.assign(gids, gids + n);
    }
    sd_bus_creds_unref(creds);
    if (r < 0 || augmented) return fail(Code::AccessDenied, "cannot verify the caller");
    return c;
}

Result<AuthorizedCaller> GuestService::authorize(sd_bus_message* m, Access access, std::string_view method) {
    Door door = Door::Vmm;
    sd_bus* bus = sd_bus_message_get_bus(m);
    for (const auto& c : connections_)
        if (c.bus == bus) door = c.door;
    auto caller = identify(m, door);
    if (!caller) {
        record("refused", method, nullptr, {}, "the caller's credentials cannot be verified",
               "org.tio.Error.AccessDenied");
        return std::unexpected(caller.error());
    }
    bool allowed = caller->uid == 0 || policy_.admins.admits(caller->uid, caller->groups);
    if (!allowed) {
        const core::GuestPolicy* g = policy_.guest(guest_.config().name);
        if (door == Door::Vmm) {
            // The VMM's door: the guest's owners may read and drive it.
            allowed = g != nullptr && g->owners.admits(caller->uid, caller->groups);
        } else {
            // The admin's door: reading for everyone the bus policy admits; mutating
            // only for uid 0 or policy admins.
            allowed = access == Access::Read;
        }
    }
    if (!allowed) {
        caller->door = door;
        record("refused", method, &*caller, {}, "not an owner or admin of this guest", "org.tio.Error.AccessDenied");
        return fail(Code::AccessDenied, "uid " + std::to_string(caller->uid) + " may not call " + std::string(method) +
                                            " on guest " + guest_.config().name);
    }
    return AuthorizedCaller(std::move(*caller));
}

std::string GuestService::devicePath(const core::Device& d) {
    return std::string(kDevicePrefix) + d.bdf.objectName();
}
std::string GuestService::viommuPath(core::ObjectId id) { return std::string(kViommuPathPrefix) + std::to_string(id); }
std::string GuestService::memoryPath(core::ObjectId id) { return std::string(kMemoryPathPrefix) + std::to_string(id); }

std::optional<core::ObjectId> GuestService::idFromPath(std::string_view path, std::string_view prefix) {
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

std::optional<core::ObjectId> GuestService::deviceFromPath(std::string_view path) const {
    if (!path.starts_with(kDevicePrefix)) return std::nullopt;
    std::string name(path.substr(kDevicePrefix.size()));
    // 0000_3a_00_0 -> 0000:3a:00.0, then the strict parser decides.
    if (name.size() != 12) return std::nullopt;
    name[4] = ':';
    name[7] = ':';
    name[10] = '.';
    const auto bdf = Bdf::parse(name);
    if (!bdf) return std::nullopt;
    return guest_.findDevice(*bdf);
}

std::map<std::string, ObjectView> GuestService::buildViews() const {
    std::map<std::string, ObjectView> v;
    std::vector<std::string> devices, viommus, regions;
    std::uint64_t private_bytes = 0, shared_bytes = 0;
    std::map<core::ObjectId, std::vector<ObjectPathValue>> vdevs_of;
    for (const auto& [id, d] : guest_.devices()) {
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
                              {"TsmConnected", d.tsm_connected}}};
    }
    for (const auto& [id, vi] : guest_.viommus()) {
        const std::string path = viommuPath(id);
        viommus.push_back(path);
        v[path] = ObjectView{kViommuIface,
                             {{"Id", std::uint32_t{vi.kernel_id}},
                              {"Type", std::string(kernel::viommuTypeName(vi.type))},
                              {"VDevices", vdevs_of[id]}}};
    }
    for (const auto& [id, m] : guest_.memory()) {
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
                              {"Revoked", m.revoked_bytes != 0}}};
    }
    const auto* vm = guest_.vm();
    v[kRootPath] = ObjectView{kGuestIface,
                              {{"Name", guest_.config().name},
                               {"Platform", std::string(toString(guest_.config().platform))},
                               {"Backend", backend_},
                               {"VmType", vm != nullptr ? std::string(core::toString(vm->type)) : std::string()},
                               {"State", std::string(core::toString(guest_.state()))},
                               {"Devices", paths(devices)},
                               {"VIommus", paths(viommus)},
                               {"MemoryRegions", paths(regions)},
                               {"PrivateBytes", private_bytes},
                               {"SharedBytes", shared_bytes},
                               {"Conversions", guest_.conversions()},
                               {"Revocations", guest_.revocations()},
                               {"Clients", static_cast<std::uint32_t>(vmmClients())}}};
    return v;
}

const ObjectView* GuestService::view(const std::string& path) {
    auto it = published_.find(path);
    return it == published_.end() ? nullptr : &it->second;
}

std::vector<std::string> GuestService::childPaths() {
    std::vector<std::string> out;
    for (const auto& [path, v] : published_)
        if (path != kRootPath) out.push_back(path);
    return out;
}

void GuestService::publish() {
    auto next = buildViews();
    auto previous = std::exchange(published_, next);
    for (const auto& c : connections_) {
        sd_bus* bus = c.bus;
        // A peer still authenticating cannot have subscribed to anything, and writing
        // a signal before the handshake ends would corrupt the stream.
        if (sd_bus_is_ready(bus) <= 0) continue;
        for (const auto& [path, old] : previous) {
            if (!next.contains(path)) (void)sd_bus_emit_interfaces_removed(bus, path.c_str(), old.iface.c_str(), nullptr);
        }
        for (const auto& [path, now] : next) {
            auto it = previous.find(path);
            if (it == previous.end()) {
                (void)sd_bus_emit_interfaces_added(bus, path.c_str(), now.iface.c_str(), nullptr);
                continue;
            }
            std::vector<std::string> changed;
            for (const auto& [name, value] : now.properties) {
                auto p = it->second.properties.find(name);
                if (p == it->second.properties.end() || !(p->second == value)) changed.push_back(name);
            }
            if (changed.empty()) continue;
            std::vector<char*> names;
            for (auto& n : changed) names.push_back(n.data());
            names.push_back(nullptr);
            (void)sd_bus_emit_properties_changed_strv(bus, path.c_str(), now.iface.c_str(), names.data());
        }
    }
    if (on_published_) on_published_();
}

void GuestService::watchTdis() {
    if (shutting_down_) return;
    for (const core::ObjectId id : guest_.watchTdis()) {
        const auto& d = guest_.devices().at(id);
        record("tdi-error", {}, nullptr, d.bdf.toString(), "host config write or reset");
        publish();
        emitFault(devicePath(d), "tdi-error",
                  "the TDI of " + d.bdf.toString() + " went to error (host config write or reset); Unbind it");
    }
}

void GuestService::setPolicy(core::Policy policy) {
    policy_ = std::move(policy);
    const std::string& name = guest_.config().name;
    const core::GuestPolicy* gp = policy_.guest(name);
    if (gp == nullptr) {
        record("policy-violation", {}, nullptr, kRootPath, "the guest is no longer in the policy");
        emitFault(kRootPath, "policy", "guest " + name + " is no longer in the policy; its objects stay until torn down");
        return;
    }
    for (const auto& [id, d] : guest_.devices()) {
        if (policy_.allowsDevice(name, d.bdf)) continue;
        record("policy-violation", {}, nullptr, d.bdf.toString(), "the device is no longer in the policy");
        emitFault(devicePath(d), "policy",
                  d.bdf.toString() + " is no longer allowed by the policy; it stays assigned until removed");
    }
    if (guest_.devices().size() > gp->max_devices || guest_.memory().size() > gp->max_memory_regions) {
        emitFault(kRootPath, "policy", "the guest holds more devices or memory regions than the new limits allow");
    }
}

Result<> GuestService::takeConversionBudget(std::size_t ranges) {
    const core::GuestPolicy* gp = policy_.guest(guest_.config().name);
    if (gp == nullptr || gp->max_conversions_per_second == 0) return {};
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    const auto second = static_cast<std::uint64_t>(ts.tv_sec);
    if (conversion_window_.second != second) conversion_window_ = {second, 0};
    if (conversion_window_.used + ranges > gp->max_conversions_per_second) {
        return fail(Code::LimitExceeded,
                    "the policy allows " + std::to_string(gp->max_conversions_per_second) + " conversions per second");
    }
    conversion_window_.used += ranges;
    return {};
}

template <typename... Args>
void GuestService::broadcast(const char* member, const char* signature, Args... args) {
    for (const auto& c : connections_) {
        if (sd_bus_is_ready(c.bus) <= 0) continue;
        (void)sd_bus_emit_signal(c.bus, kRootPath, kGuestIface, member, signature, args...);
    }
}

void GuestService::emitFault(const std::string& object_path, const std::string& kind, const std::string& detail) {
    broadcast("Fault", "oss", object_path.c_str(), kind.c_str(), detail.c_str());
}

void GuestService::emitMemoryRevoked(std::uint64_t gpa, std::uint64_t size, const std::string& reason) {
    broadcast("MemoryRevoked", "tts", gpa, size, reason.c_str());
}

int getProperty(sd_bus*, const char* path, const char* iface, const char* property, sd_bus_message* reply,
                void* userdata, sd_bus_error* err) {
    auto* svc = static_cast<GuestService*>(userdata);
    const ObjectView* v = svc->view(path);
    if (v == nullptr || v->iface != iface) return sd_bus_error_set(err, "org.tio.Error.NotFound", "no such object");
    auto it = v->properties.find(property);
    if (it == v->properties.end()) return sd_bus_error_set(err, "org.tio.Error.NotFound", "no such property");
    return std::visit(
        [&](const auto& value) -> int {
            using T = std::decay_t<decltype(value)>;
            if constexpr (std::is_same_v<T, std::string>) return sd_bus_message_append(reply, "s", value.c_str());
            else if constexpr (std::is_same_v<T, std::uint64_t>) return sd_bus_message_append(reply, "t", value);
            else if constexpr (std::is_same_v<T, std::uint32_t>) return sd_bus_message_append(reply, "u", value);
            else if constexpr (std::is_same_v<T, bool>) return sd_bus_message_append(reply, "b", static_cast<int>(value));
            else if constexpr (std::is_same_v<T, ObjectPathValue>) return sd_bus_message_append(reply, "o", value.path.c_str());
            else {
                int r = sd_bus_message_open_container(reply, 'a', "o");
                for (const auto& p : value) {
                    if (r >= 0) r = sd_bus_message_append(reply, "o", p.path.c_str());
                }
                if (r >= 0) r = sd_bus_message_close_container(reply);
                return r;
            }
        },
        it->second);
}

}  // namespace tio::dbus
