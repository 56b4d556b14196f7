#include "dbus/audit_trail.hpp"

namespace tio::dbus {

void AuditTrail::record(std::string event, std::string_view method, const core::Caller* who, std::string object,
                        std::string detail, std::string error) {
    if (event == "refused" && who != nullptr) {
        const auto verdict = refusals_.admit(who->uid);
        if (verdict.suppressed > 0) {
            record("refusals-suppressed", {}, nullptr, {},
                   std::to_string(verdict.suppressed) + " refusal records of uid " + std::to_string(who->uid) +
                       " suppressed (more than " + std::to_string(kRefusalBurst) + " in " +
                       std::to_string(kRefusalInterval.count()) + " s)");
        }
        if (!verdict.write) return;
    }
    tio::v1::AuditRecord r;
    r.set_guest(guest_);
    r.set_event(std::move(event));
    r.set_method(std::string(method));
    if (who != nullptr) {
        r.set_has_peer(true);
        r.set_peer_uid(who->uid);
        r.set_peer_pid(static_cast<std::uint32_t>(who->pid));
        r.set_door(who->door == core::Door::Vmm ? "vmm" : "admin");
    }
    r.set_object(std::move(object));
    r.set_detail(std::move(detail));
    r.set_error(std::move(error));
    log_.append(std::move(r));
}

}  // namespace tio::dbus
