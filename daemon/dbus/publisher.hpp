#pragma once
// The one source of object and property signals: publish() diffs the new views
// against what clients were told and emits InterfacesAdded/Removed and
// PropertiesChanged for the differences, so no handler can forget one; signals go
// to every connection that can carry them.
#include <systemd/sd-bus.h>

#include <string>
#include <vector>

#include "core/caller.hpp"
#include "dbus/object_views.hpp"

namespace tio::dbus {

// One door connection the guest's objects are served on.
struct Connection {
    sd_bus* bus = nullptr;
    core::Door door = core::Door::Vmm;
    // On the VMM door: the client as the kernel saw it connect (SO_PEERCRED), taken
    // at accept. sd-bus's own view of a p2p peer is not the client (bus/p2p_server.hpp).
    core::Caller peer;
};

class Publisher {
public:
    explicit Publisher(Views initial) : published_(std::move(initial)) {}

    void publish(Views next, const std::vector<Connection>& connections);
    // The published view at `path` (what clients were told), if any.
    [[nodiscard]] const ObjectView* view(const std::string& path) const;
    [[nodiscard]] std::vector<std::string> childPaths() const;

    // A Guest1 signal on every connection that can carry it.
    template <typename... Args>
    static void broadcast(const std::vector<Connection>& connections, const char* member, const char* signature,
                          Args... args) {
        for (const auto& c : connections) {
            if (sd_bus_is_ready(c.bus) <= 0) continue;
            (void)sd_bus_emit_signal(c.bus, kRootPath, kGuestIface, member, signature, args...);
        }
    }

private:
    Views published_;
};

}  // namespace tio::dbus
