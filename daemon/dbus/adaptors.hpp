#pragma once
// One adaptor (vtable) per D-Bus interface, all served by GuestService, plus what
// every handler shares.
#include <systemd/sd-bus.h>

#include <spdlog/spdlog.h>

#include <exception>
#include <optional>
#include <string>
#include <vector>

#include "dbus/errors.hpp"
#include "dbus/guest_service.hpp"

namespace tio::dbus {

const sd_bus_vtable* guestVtable();
const sd_bus_vtable* deviceVtable();
const sd_bus_vtable* viommuVtable();
const sd_bus_vtable* memoryVtable();

// The one property getter: it reads the published view of the object.
int getProperty(sd_bus* bus, const char* path, const char* iface, const char* property, sd_bus_message* reply,
                void* userdata, sd_bus_error* err);

// Known a{sv} options; any other key, or a known key with the wrong type, is refused.
struct Options {
    std::vector<std::string> flags;  // "flags": as
    std::optional<std::string> type;  // "type": s
};
[[nodiscard]] Result<Options> readOptions(sd_bus_message* m, bool allow_flags, bool allow_type);

// Reads an `h` argument into a new owner (the message keeps its own copy).
[[nodiscard]] Result<UniqueFd> readFd(sd_bus_message* m);

// The id in a vIOMMU or memory object path of this guest, or NotFound naming `noun`.
[[nodiscard]] inline Result<core::ObjectId> objectId(std::string_view path, std::string_view prefix,
                                                     std::string_view noun) {
    const auto id = GuestService::idFromPath(path, prefix);
    if (!id) return fail(Code::NotFound, "no such " + std::string(noun) + " in this guest");
    return *id;
}
inline constexpr std::string_view kViommuPathPrefix = "/org/tio/Guest1/viommu/";
inline constexpr std::string_view kMemoryPathPrefix = "/org/tio/Guest1/memory/";

[[nodiscard]] inline Error malformed() { return Error{Code::InvalidArgument, "malformed arguments"}; }

// Every method has this shape (style rule 19): refuse while stopping, authorize,
// run the body (decode, validate, call the core, append the reply), publish what
// changed, reply. Only named errors leave; anything unexpected is Internal with a
// generic message, the details going to the journal.
template <typename Body>
int runMethod(sd_bus_message* m, void* userdata, sd_bus_error* err, Access access, const char* method, Body&& body) {
    auto& svc = *static_cast<GuestService*>(userdata);
    try {
        if (svc.shuttingDown()) return setError(err, Error{Code::ShuttingDown, "tio-manager is stopping"});
        auto who = svc.authorize(m, access, method);
        if (!who) return setError(err, who.error());
        sd_bus_message* reply = nullptr;
        if (const int r = sd_bus_message_new_method_return(m, &reply); r < 0) return r;
        Result<> result = body(svc, *who, reply);
        if (!result) {
            sd_bus_message_unref(reply);
            if (result.error().code == Code::Internal) {
                spdlog::error("method={} code=Internal detail={}", method, result.error().message);
            }
            return setError(err, result.error());
        }
        svc.publish();
        const int r = sd_bus_send(nullptr, reply, nullptr);
        sd_bus_message_unref(reply);
        return r;
    } catch (const std::exception& e) {
        spdlog::error("method={} code=Internal exception={}", method, e.what());
        return setError(err, Error{Code::Internal, e.what()});
    }
}

}  // namespace tio::dbus
