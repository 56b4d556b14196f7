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
#include "dbus/sd_ptr.hpp"

namespace tio::dbus {

using core::Access;
using core::AuthorizedCaller;

const sd_bus_vtable* guestVtable();
const sd_bus_vtable* deviceVtable();
const sd_bus_vtable* viommuVtable();
const sd_bus_vtable* memoryVtable();

// The one property getter: it reads the published view of the object.
int getProperty(sd_bus* bus, const char* path, const char* iface, const char* property, sd_bus_message* reply,
                void* userdata, sd_bus_error* err);

// Known a{sv} options; a key the method does not take, or a known key with the
// wrong type, is refused.
enum class OptionKey : unsigned { Type = 1U, SharedFd = 2U, SharedOffset = 4U, VfToken = 8U };
[[nodiscard]] constexpr unsigned operator|(OptionKey a, OptionKey b) {
    return static_cast<unsigned>(a) | static_cast<unsigned>(b);
}
struct Options {
    std::optional<std::string> type;             // "type": s
    std::optional<UniqueFd> shared_fd;           // "shared-fd": h
    std::optional<std::uint64_t> shared_offset;  // "shared-offset": t
    std::optional<kernel::VfToken> vf_token;     // "vf-token": s, a UUID
};
[[nodiscard]] Result<Options> readOptions(sd_bus_message* m, unsigned allowed = 0);

// Reads an `h` argument into a new owner (the message keeps its own copy).
[[nodiscard]] Result<UniqueFd> readFd(sd_bus_message* m);

[[nodiscard]] inline Error malformed() { return Error{Code::InvalidArgument, "malformed arguments"}; }

// Every method has this shape (style rule 19): refuse while stopping, authorize,
// run the body (decode, call the core, append the reply), reply. The core publishes
// and persists what changed before it returns. Only named errors leave; anything
// unexpected is Internal with a generic message, the details going to the journal.
template <typename Body>
int runMethod(sd_bus_message* m, void* userdata, sd_bus_error* err, Access access, const char* method, Body&& body) {
    auto& svc = *static_cast<GuestService*>(userdata);
    try {
        if (svc.shuttingDown()) return setError(err, Error{Code::ShuttingDown, "tio-manager is stopping"});
        auto who = svc.authorize(m, access, method);
        if (!who) return setError(err, who.error());
        sd_bus_message* raw = nullptr;
        if (const int r = sd_bus_message_new_method_return(m, &raw); r < 0) return r;
        const MessagePtr reply(raw);
        Result<> result = body(svc, *who, reply.get());
        if (!result) {
            if (result.error().code == Code::Internal) {
                spdlog::error("method={} code=Internal detail={}", method, result.error().message);
            }
            return setError(err, result.error());
        }
        return sd_bus_send(nullptr, reply.get(), nullptr);
    } catch (const std::exception& e) {
        spdlog::error("method={} code=Internal exception={}", method, e.what());
        return setError(err, Error{Code::Internal, e.what()});
    }
}

}  // namespace tio::dbus
