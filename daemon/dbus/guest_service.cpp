#include "dbus/guest_service.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "dbus/adaptors.hpp"

namespace tio::dbus {

namespace {

// sd-bus find callback for the child fallback vtables: the object exists when the
// published model has it (machined does the same with machine_object_find).
int findObject(sd_bus*, const char* path, const char* iface, void* userdata, void** found, sd_bus_error*) {
    auto* svc = static_cast<GuestService*>(userdata);
    const ObjectView* v = svc->publisher().view(path);
    if (v == nullptr || v->iface != iface) return 0;
    *found = svc;
    return 1;
}

int enumerateChildren(sd_bus*, const char*, void* userdata, char*** nodes, sd_bus_error*) {
    auto* svc = static_cast<GuestService*>(userdata);
    const auto paths = svc->publisher().childPaths();
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

}  // namespace

GuestService::GuestService(core::Guest& guest, std::string backend, audit::AuditLog audit)
    : guest_(guest),
      backend_(std::move(backend)),
      audit_(guest.config().name, std::move(audit)),
      authorizer_(guest.guard(), audit_),
      publisher_(buildViews(guest, facts())) {
    guest_.subscribe([this] { publish(); });
}

ServiceFacts GuestService::facts() const {
    return ServiceFacts{.backend = backend_, .clients = static_cast<std::uint32_t>(vmmClients())};
}

int GuestService::attach(sd_bus* bus, core::Door door, int peer_socket) {
    core::Caller peer;
    if (door == core::Door::Vmm) {
        auto who = Authorizer::peerOf(peer_socket);
        if (!who) return -EACCES;
        peer = std::move(*who);
    }
    int r = sd_bus_add_object_vtable(bus, nullptr, kRootPath, kGuestIface, guestVtable(), this);
    if (r >= 0)
        r = sd_bus_add_fallback_vtable(bus, nullptr, "/org/tio/Guest1/device", kDeviceIface, deviceVtable(), findObject,
                                       this);
    if (r >= 0)
        r = sd_bus_add_fallback_vtable(bus, nullptr, "/org/tio/Guest1/viommu", kViommuIface, viommuVtable(), findObject,
                                       this);
    if (r >= 0)
        r = sd_bus_add_fallback_vtable(bus, nullptr, "/org/tio/Guest1/memory", kMemoryIface, memoryVtable(), findObject,
                                       this);
    if (r >= 0) r = sd_bus_add_node_enumerator(bus, nullptr, kRootPath, enumerateChildren, this);
    if (r >= 0) r = sd_bus_add_object_manager(bus, nullptr, kRootPath);
    if (r < 0) {
        spdlog::error("cannot serve the object tree on a connection: {}", std::strerror(-r));
        return r;
    }
    connections_.push_back({bus, door, std::move(peer)});
    if (door == core::Door::Vmm) publish();  // Clients changed
    return 0;
}

void GuestService::detached(sd_bus* bus) {
    const auto before = vmmClients();
    std::erase_if(connections_, [&](const Connection& c) { return c.bus == bus; });
    if (before > 0 && vmmClients() == 0 && guest_.state() != core::GuestState::Empty) {
        // The VMM's last connection closed: unwind leaf-first (architecture.md 5).
        audit_.record("teardown", {}, nullptr, {}, "the last VMM connection closed");
        for (const auto& e : guest_.teardown()) spdlog::warn("teardown step failed: {}, ignoring", e.message);
    }
    publish();
}

std::size_t GuestService::vmmClients() const {
    return static_cast<std::size_t>(std::count_if(connections_.begin(), connections_.end(),
                                                  [](const auto& c) { return c.door == core::Door::Vmm; }));
}

Result<core::AuthorizedCaller> GuestService::authorize(sd_bus_message* m, core::Access access,
                                                       std::string_view method) {
    sd_bus* bus = sd_bus_message_get_bus(m);
    const auto c = std::find_if(connections_.begin(), connections_.end(), [&](const auto& x) { return x.bus == bus; });
    // A message on no known connection has no verified sender: the authorizer refuses it.
    if (c == connections_.end()) return authorizer_.authorize(m, core::Door::Vmm, nullptr, access, method);
    return authorizer_.authorize(m, c->door, c->door == core::Door::Vmm ? &c->peer : nullptr, access, method);
}

void GuestService::noteQueuedOutput() const {
    if (!output_watcher_) return;
    for (const auto& c : connections_) {
        std::uint64_t queued = 0;
        if (c.door == core::Door::Vmm && sd_bus_get_n_queued_write(c.bus, &queued) >= 0 && queued > 0) {
            output_watcher_(c.bus);
        }
    }
}

void GuestService::publish() {
    publisher_.publish(buildViews(guest_, facts()), connections_);
    // After the properties: a client that hears the Fault reads the new state.
    for (const auto& r : guest_.takeFailedClosed()) emitMemoryRevoked(r.gpa, r.size, "rollback-failed");
    for (const core::DeviceFault& f : guest_.takeFaults()) {
        auto it = guest_.devices().find(f.device);
        const std::string path = it != guest_.devices().end() ? devicePath(it->second) : std::string(kRootPath);
        audit_.record(f.kind, {}, nullptr, it != guest_.devices().end() ? it->second.bdf.toString() : path, f.detail);
        emitFault(path, f.kind, f.detail);
    }
    noteQueuedOutput();
}

void GuestService::watchTdis() {
    if (shutting_down_) return;
    guest_.watchTdis();  // what changed is published, and its faults sent, by publish()
}

void GuestService::refreshForRead(sd_bus_message* reply, core::ObjectId device) {
    // One kernel call per device and message: GetAll and GetManagedObjects read both
    // TdiState and TsmConnected of a device from the same look.
    // Only a client's read asks the kernel; the signals that publish() emits read the
    // model that the look just brought up to date.
    std::uint8_t type = 0;
    if (sd_bus_message_get_type(reply, &type) < 0 || type != SD_BUS_MESSAGE_METHOD_RETURN) return;
    std::uint64_t cookie = 0;
    (void)sd_bus_message_get_reply_cookie(reply, &cookie);
    const ReadStamp stamp{sd_bus_message_get_bus(reply), cookie, device};
    if (cookie != 0 && stamp == last_read_) return;
    last_read_ = stamp;
    // A failed look leaves the last known state; the next read asks again.
    if (auto r = guest_.refreshDevice(device); !r) spdlog::debug("re-reading {}: {}", device, r.error().message);
}

void GuestService::setPolicy(core::Policy policy) {
    for (const core::PolicyFinding& f : guest_.setPolicy(std::move(policy))) {
        const core::Device* d = f.device != 0 ? &guest_.devices().at(f.device) : nullptr;
        audit_.record("policy-violation", {}, nullptr, d != nullptr ? d->bdf.toString() : std::string(kRootPath),
                      f.detail);
        emitFault(d != nullptr ? devicePath(*d) : std::string(kRootPath), "policy", f.detail);
    }
}

void GuestService::emitFault(const std::string& object_path, const std::string& kind, const std::string& detail) {
    Publisher::broadcast(connections_, "Fault", "oss", object_path.c_str(), kind.c_str(), detail.c_str());
    noteQueuedOutput();
}

void GuestService::emitMemoryRevoked(std::uint64_t gpa, std::uint64_t size, const std::string& reason) {
    Publisher::broadcast(connections_, "MemoryRevoked", "tts", gpa, size, reason.c_str());
    noteQueuedOutput();
}

int getProperty(sd_bus*, const char* path, const char* iface, const char* property, sd_bus_message* reply,
                void* userdata, sd_bus_error* err) {
    auto* svc = static_cast<GuestService*>(userdata);
    // These two are what the kernel says at the time of the read, not a cached guess.
    const std::string_view name(property);
    if (std::string_view(iface) == kDeviceIface && (name == "TdiState" || name == "TsmConnected")) {
        if (const auto id = deviceFromPath(svc->guest(), path)) svc->refreshForRead(reply, *id);
    }
    const ObjectView* v = svc->publisher().view(path);
    if (v == nullptr || v->iface != iface) return setError(err, Error{Code::NotFound, "no such object"});
    auto it = v->properties.find(property);
    if (it == v->properties.end()) return setError(err, Error{Code::NotFound, "no such property"});
    return appendProperty(reply, it->second);
}

}  // namespace tio::dbus
