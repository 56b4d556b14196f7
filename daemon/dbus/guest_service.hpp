#pragma once
// The guest's D-Bus face, shared by both doors: the same vtables are registered on
// every peer-to-peer VMM connection and on the system bus. It keeps the registry
// of connections (the guest is torn down when the VMM's last one closes), and
// wires the parts: the authorizer (who may call), the views and the publisher
// (what clients see; republished whenever the core says it changed), the audit
// trail. Every decision is the core's; the adaptors only decode, call and encode.
// Single-threaded: everything runs on the sd-event loop.
#include <systemd/sd-bus.h>

#include <functional>
#include <string>
#include <vector>

#include "audit/audit_log.hpp"
#include "core/guest.hpp"
#include "dbus/audit_trail.hpp"
#include "dbus/authorizer.hpp"
#include "dbus/object_views.hpp"
#include "dbus/publisher.hpp"

namespace tio::dbus {

class GuestService {
public:
    GuestService(core::Guest& guest, std::string backend, audit::AuditLog audit = audit::AuditLog());
    GuestService(const GuestService&) = delete;
    GuestService& operator=(const GuestService&) = delete;

    // Registers the object tree on `bus`; 0 or a negative errno. A VMM-door bus comes
    // with its client's socket, whose peer credentials identify every call on it.
    [[nodiscard]] int attach(sd_bus* bus, core::Door door, int peer_socket = -1);
    // `bus` is gone. When it was the last VMM connection, the guest is torn down.
    void detached(sd_bus* bus);

    // A new policy applies to the calls that follow; what the guest already holds and
    // the new policy no longer allows is audited and reported (Fault, kind "policy").
    void setPolicy(core::Policy policy);
    // Told about every VMM-door bus that has messages queued after a broadcast, so
    // its server can wait for it to drain (or enforce its quota).
    void setOutputWatcher(std::function<void(sd_bus*)> watcher) { output_watcher_ = std::move(watcher); }
    void beginShutdown() { shutting_down_ = true; }
    [[nodiscard]] bool shuttingDown() const { return shutting_down_; }
    [[nodiscard]] std::size_t vmmClients() const;

    // --- used by the adaptors ---
    [[nodiscard]] core::Guest& guest() { return guest_; }
    [[nodiscard]] const std::string& backend() const { return backend_; }
    [[nodiscard]] AuditTrail& audit() { return audit_; }
    // The caller of `m` on whichever door it came through, if the guard admits them.
    [[nodiscard]] Result<core::AuthorizedCaller> authorize(sd_bus_message* m, core::Access access,
                                                           std::string_view method);
    // Whether a just-accepted guest-socket peer may drive the guest at all.
    [[nodiscard]] bool admitsVmmPeer(int fd) const { return authorizer_.admitsVmmPeer(fd); }
    // Rebuilds the views from the model and emits what changed.
    void publish();
    void emitFault(const std::string& object_path, const std::string& kind, const std::string& detail);
    void emitMemoryRevoked(std::uint64_t gpa, std::uint64_t size, const std::string& reason);
    // One look at the bound TDIs: what changed behind the daemon's back is published
    // and reported with a Fault signal (the VMM did not ask for it).
    void watchTdis();
    // Re-reads `device` from the kernel for a property read answered by `reply`, once
    // per message.
    void refreshForRead(sd_bus_message* reply, core::ObjectId device);
    [[nodiscard]] const Publisher& publisher() const { return publisher_; }

private:
    [[nodiscard]] ServiceFacts facts() const;
    void noteQueuedOutput() const;

    core::Guest& guest_;
    std::string backend_;
    bool shutting_down_ = false;
    std::vector<Connection> connections_;  // before publisher_: its first views count them
    AuditTrail audit_;
    Authorizer authorizer_;
    Publisher publisher_;
    struct ReadStamp {
        sd_bus* bus = nullptr;
        std::uint64_t cookie = 0;
        core::ObjectId device = 0;
        bool operator==(const ReadStamp&) const = default;
    };
    ReadStamp last_read_;
    std::function<void(sd_bus*)> output_watcher_;
};

}  // namespace tio::dbus
