// org.tio.Device1 on /org/tio/Guest1/device/SSSS_BB_DD_F.
#include <spdlog/spdlog.h>

#include <functional>

#include "dbus/adaptors.hpp"

namespace tio::dbus {
namespace {

// The device a call addresses; the find callback already proved it exists.
Result<core::ObjectId> target(GuestService& svc, sd_bus_message* m) {
    const auto id = deviceFromPath(svc.guest(), sd_bus_message_get_path(m));
    if (!id) return fail(Code::NotFound, "no such device in this guest");
    return *id;
}

// A byte array argument as a span over the message's own copy.
Result<std::span<const std::uint8_t>> readBytes(sd_bus_message* m) {
    const void* data = nullptr;
    std::size_t size = 0;
    if (sd_bus_message_read_array(m, 'y', &data, &size) < 0) return std::unexpected(malformed());
    return std::span<const std::uint8_t>(static_cast<const std::uint8_t*>(data), size);
}

Result<> appendBytesAnd(sd_bus_message* reply, std::span<const std::uint8_t> bytes, std::uint64_t number) {
    if (sd_bus_message_append_array(reply, 'y', bytes.data(), bytes.size()) < 0 ||
        sd_bus_message_append(reply, "t", number) < 0) {
        return fail(Code::LimitExceeded, "the answer does not fit in a message");
    }
    return {};
}

// A method on the device's path with no arguments and nothing to reply: `op` is the
// core method, the event what the audit calls its success.
template <typename Op>
int simple(sd_bus_message* m, void* userdata, sd_bus_error* err, const char* method, const char* event, Op&& op) {
    return runMethod(m, userdata, err, Access::Mutate, method,
                     [&](GuestService& svc, const AuthorizedCaller& who, sd_bus_message*) -> Result<> {
                         auto id = target(svc, m);
                         if (!id) return std::unexpected(id.error());
                         const std::string bdf = svc.guest().devices().at(*id).bdf.toString();
                         auto r = std::invoke(op, svc.guest(), who, *id);
                         if (r) svc.audit().record(event, method, &who.caller(), bdf);
                         return r;
                     });
}

int getVfioFd(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    return runMethod(m, userdata, err, Access::Mutate, "GetVfioFd",
                     [&](GuestService& svc, const AuthorizedCaller& who, sd_bus_message* reply) -> Result<> {
                         auto id = target(svc, m);
                         if (!id) return std::unexpected(id.error());
                         auto fd = svc.guest().vfioFd(who, *id);
                         if (!fd) return std::unexpected(fd.error());
                         if (sd_bus_message_append(reply, "h", fd->get()) < 0) {
                             return fail(Code::LimitExceeded, "cannot pass the fd");
                         }
                         return {};
                     });
}

int createVdevice(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    return runMethod(m, userdata, err, Access::Mutate, "CreateVDevice",
                     [&](GuestService& svc, const AuthorizedCaller& who, sd_bus_message*) -> Result<> {
                         const char* viommu = nullptr;
                         std::uint64_t virtual_id = 0;
                         if (sd_bus_message_read(m, "ot", &viommu, &virtual_id) < 0)
                             return std::unexpected(malformed());
                         auto id = target(svc, m);
                         if (!id) return std::unexpected(id.error());
                         auto vid = objectId(viommu, kViommuPathPrefix, "vIOMMU");
                         if (!vid) return std::unexpected(vid.error());
                         return svc.guest().createVdevice(who, *id, *vid, virtual_id);
                     });
}

int guestRequest(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    return runMethod(m, userdata, err, Access::Mutate, "GuestRequest",
                     [&](GuestService& svc, const AuthorizedCaller& who, sd_bus_message* reply) -> Result<> {
                         const char* scope = nullptr;
                         if (sd_bus_message_read(m, "s", &scope) < 0) return std::unexpected(malformed());
                         auto request = readBytes(m);
                         if (!request) return std::unexpected(request.error());
                         core::GuestRequestScope s;
                         if (std::string_view(scope) == "info") s = core::GuestRequestScope::Info;
                         else if (std::string_view(scope) == "state-change") s = core::GuestRequestScope::StateChange;
                         else return fail(Code::InvalidArgument, "scope is 'info' or 'state-change'");
                         auto id = target(svc, m);
                         if (!id) return std::unexpected(id.error());
                         auto resp = svc.guest().guestRequest(who, *id, s, *request);
                         if (!resp) return std::unexpected(resp.error());
                         if (sd_bus_message_append_array(reply, 'y', resp->data(), resp->size()) < 0) {
                             return std::unexpected(malformed());
                         }
                         return {};
                     });
}

int tsmRequest(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    return runMethod(m, userdata, err, Access::Mutate, "TsmRequest",
                     [&](GuestService& svc, const AuthorizedCaller& who, sd_bus_message* reply) -> Result<> {
                         const char* op = nullptr;
                         if (sd_bus_message_read(m, "s", &op) < 0) return std::unexpected(malformed());
                         auto payload = readBytes(m);
                         if (!payload) return std::unexpected(payload.error());
                         auto id = target(svc, m);
                         if (!id) return std::unexpected(id.error());
                         auto r = svc.guest().tsmRequest(who, *id, op, *payload);
                         if (!r) return std::unexpected(r.error());
                         return appendBytesAnd(reply, r->response, r->tsm_code);
                     });
}

int getEvidence(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    return runMethod(m, userdata, err, Access::Read, "GetEvidence",
                     [&](GuestService& svc, const AuthorizedCaller& who, sd_bus_message* reply) -> Result<> {
                         const char* kind = nullptr;
                         if (sd_bus_message_read(m, "s", &kind) < 0) return std::unexpected(malformed());
                         const auto k = core::parseEvidenceKind(kind);
                         if (!k) {
                             return fail(Code::InvalidArgument,
                                         "kind is 'certificates', 'measurements' or 'interface-report'");
                         }
                         auto id = target(svc, m);
                         if (!id) return std::unexpected(id.error());
                         auto e = svc.guest().evidence(who, *id, *k);
                         if (!e) return std::unexpected(e.error());
                         return appendBytesAnd(reply, e->blob, e->generation);
                     });
}

int destroyVdevice(sd_bus_message* m, void* u, sd_bus_error* e) {
    return simple(m, u, e, "DestroyVDevice", "vdevice-destroyed", &core::Guest::destroyVdevice);
}
int bind(sd_bus_message* m, void* u, sd_bus_error* e) {
    return simple(m, u, e, "Bind", "device-bound", &core::Guest::bind);
}
int unbind(sd_bus_message* m, void* u, sd_bus_error* e) {
    return simple(m, u, e, "Unbind", "device-unbound", &core::Guest::unbind);
}
int reset(sd_bus_message* m, void* u, sd_bus_error* e) {
    return simple(m, u, e, "Reset", "device-reset", &core::Guest::reset);
}
int attach(sd_bus_message* m, void* u, sd_bus_error* e) {
    return simple(m, u, e, "Attach", "device-attached", &core::Guest::attachDevice);
}
int remove(sd_bus_message* m, void* u, sd_bus_error* e) {
    return simple(m, u, e, "Remove", "device-removed", &core::Guest::removeDevice);
}

constexpr std::uint64_t kProp = SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE;
constexpr std::uint64_t kCall = SD_BUS_VTABLE_UNPRIVILEGED;

const sd_bus_vtable kVtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD_WITH_NAMES("GetVfioFd", "", , "h", SD_BUS_PARAM(fd), getVfioFd, kCall),
    SD_BUS_METHOD("Attach", "", "", attach, kCall),
    SD_BUS_METHOD_WITH_NAMES("CreateVDevice", "ot", SD_BUS_PARAM(viommu) SD_BUS_PARAM(virtual_id), "", , createVdevice,
                             kCall),
    SD_BUS_METHOD("DestroyVDevice", "", "", destroyVdevice, kCall),
    SD_BUS_METHOD("Bind", "", "", bind, kCall),
    SD_BUS_METHOD_WITH_NAMES("GuestRequest", "say", SD_BUS_PARAM(scope) SD_BUS_PARAM(request), "ay",
                             SD_BUS_PARAM(response), guestRequest, kCall | SD_BUS_VTABLE_DEPRECATED),
    SD_BUS_METHOD_WITH_NAMES("TsmRequest", "say", SD_BUS_PARAM(op) SD_BUS_PARAM(request), "ayt",
                             SD_BUS_PARAM(response) SD_BUS_PARAM(tsm_code), tsmRequest, kCall),
    SD_BUS_METHOD_WITH_NAMES("GetEvidence", "s", SD_BUS_PARAM(kind), "ayt", SD_BUS_PARAM(blob) SD_BUS_PARAM(generation),
                             getEvidence, kCall),
    SD_BUS_METHOD("Unbind", "", "", unbind, kCall),
    SD_BUS_METHOD("Reset", "", "", reset, kCall),
    SD_BUS_METHOD("Remove", "", "", remove, kCall),
    SD_BUS_PROPERTY("Bdf", "s", getProperty, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("VfioDevice", "s", getProperty, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("Attached", "b", getProperty, 0, kProp),
    SD_BUS_PROPERTY("VIommu", "o", getProperty, 0, kProp),
    SD_BUS_PROPERTY("VirtualId", "t", getProperty, 0, kProp),
    SD_BUS_PROPERTY("HasVDevice", "b", getProperty, 0, kProp),
    SD_BUS_PROPERTY("TdiState", "s", getProperty, 0, kProp),
    SD_BUS_PROPERTY("TsmConnected", "b", getProperty, 0, kProp),
    SD_BUS_PROPERTY("Dsm", "s", getProperty, 0, kProp),
    SD_BUS_VTABLE_END,
};

}  // namespace

const sd_bus_vtable* deviceVtable() { return kVtable; }

}  // namespace tio::dbus
