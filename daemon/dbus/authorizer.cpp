#include "dbus/authorizer.hpp"

#include <sys/socket.h>

#include "dbus/errors.hpp"
#include "dbus/sd_ptr.hpp"

namespace tio::dbus {

Result<core::Caller> Authorizer::peerOf(int fd) {
    core::Caller c;
    c.door = core::Door::Vmm;
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        return fail(Code::AccessDenied, "cannot verify the caller");
    }
    c.uid = cred.uid;
    c.pid = cred.pid;
    gid_t groups[64];
    socklen_t glen = sizeof groups;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) == 0) {
        c.groups.assign(groups, groups + glen / sizeof(gid_t));
    }
    c.groups.push_back(cred.gid);
    return c;
}

bool Authorizer::admitsVmmPeer(int fd) const {
    auto peer = peerOf(fd);
    return peer && guard_.admits(*peer, core::Access::Mutate);
}

Result<core::Caller> Authorizer::identify(sd_bus_message* m, core::Door door, const core::Caller* vmm_peer) {
    // The guest socket: the kernel's SO_PEERCRED/SO_PEERGROUPS of the connection, as
    // taken at accept (sd-bus reads a socketpair; its credentials are the daemon's).
    if (door == core::Door::Vmm) {
        if (vmm_peer == nullptr) return fail(Code::AccessDenied, "cannot verify the caller");
        return *vmm_peer;
    }
    core::Caller c;
    c.door = door;
    // The system bus: credentials the bus daemon vouches for. Anything sd-bus had to
    // read from /proc (augmented) is refused: it is racy (systemd 0f51442).
    sd_bus_creds* raw = nullptr;
    const std::uint64_t mask = SD_BUS_CREDS_EUID | SD_BUS_CREDS_PID | SD_BUS_CREDS_SUPPLEMENTARY_GIDS;
    if (sd_bus_query_sender_creds(m, mask, &raw) < 0) return fail(Code::AccessDenied, "cannot verify the caller");
    const CredsPtr creds(raw);
    uid_t euid = 0;
    const bool augmented = (sd_bus_creds_get_augmented_mask(raw) & SD_BUS_CREDS_EUID) != 0;
    const int r = sd_bus_creds_get_euid(raw, &euid);
    if (r < 0 || augmented) return fail(Code::AccessDenied, "cannot verify the caller");
    c.uid = euid;
    pid_t pid = 0;
    if (sd_bus_creds_get_pid(raw, &pid) >= 0) c.pid = pid;
    const gid_t* gids = nullptr;
    const int n = sd_bus_creds_get_supplementary_gids(raw, &gids);
    if (n > 0 && (sd_bus_creds_get_augmented_mask(raw) & SD_BUS_CREDS_SUPPLEMENTARY_GIDS) == 0) {
        c.groups.assign(gids, gids + n);
    }
    return c;
}

Result<core::AuthorizedCaller> Authorizer::authorize(sd_bus_message* m, core::Door door, const core::Caller* vmm_peer,
                                                     core::Access access, std::string_view method) const {
    auto caller = identify(m, door, vmm_peer);
    if (!caller) {
        audit_.record("refused", method, nullptr, {}, "the caller's credentials cannot be verified",
                      errorName(Code::AccessDenied));
        return std::unexpected(caller.error());
    }
    if (!guard_.admits(*caller, access)) {
        audit_.record("refused", method, &*caller, {}, "not an owner or admin of this guest",
                      errorName(Code::AccessDenied));
        return fail(Code::AccessDenied, "uid " + std::to_string(caller->uid) + " may not call " + std::string(method) +
                                            " on guest " + guard_.guest());
    }
    return core::AuthorizedCaller(std::move(*caller));
}

}  // namespace tio::dbus
