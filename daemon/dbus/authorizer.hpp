#pragma once
// Who is calling, from kernel-verified credentials only (SO_PEERCRED on the guest
// socket; the bus daemon's word on the system bus, never sd-bus's /proc
// augmentation), and whether they may: the guard decides (core/guard.hpp), this
// mints the AuthorizedCaller the core's mutating methods take. Each refusal is
// audited.
#include <systemd/sd-bus.h>

#include <string_view>

#include "core/caller.hpp"
#include "core/guard.hpp"
#include "dbus/audit_trail.hpp"

namespace tio::dbus {

class Authorizer {
public:
    Authorizer(const core::Guard& guard, AuditTrail& audit) : guard_(guard), audit_(audit) {}

    // `vmm_peer`: on the VMM door, the client as SO_PEERCRED saw it at accept (the only
    // identity a p2p call has); null on the system bus, whose daemon vouches per message.
    [[nodiscard]] Result<core::AuthorizedCaller> authorize(sd_bus_message* m, core::Door door,
                                                           const core::Caller* vmm_peer, core::Access access,
                                                           std::string_view method) const;
    // Whether the peer of a just-accepted guest-socket connection may drive the guest
    // at all (an owner, an admin or uid 0), from SO_PEERCRED before any D-Bus work:
    // anyone else is turned away at the door and costs nothing more.
    [[nodiscard]] bool admitsVmmPeer(int fd) const;

    // The guest socket's peer as the kernel saw it connect (SO_PEERCRED, SO_PEERGROUPS).
    [[nodiscard]] static Result<core::Caller> peerOf(int fd);

private:
    [[nodiscard]] static Result<core::Caller> identify(sd_bus_message* m, core::Door door,
                                                       const core::Caller* vmm_peer);

    const core::Guard& guard_;
    AuditTrail& audit_;
};

}  // namespace tio::dbus
