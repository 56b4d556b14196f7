#pragma once
// The guest's audit trail as the doors write it: one record (journal line and, with a
// state directory, a tio.v1.AuditRecord) per assignment change, refusal or policy
// event, naming the caller as the door identified it. Refusals, which anyone who
// can connect provokes at will, are rate-limited per uid the way journald limits a
// service: at most kRefusalBurst per kRefusalInterval, then one record saying how
// many were suppressed.
#include <string>
#include <string_view>

#include "audit/audit_log.hpp"
#include "audit/rate_limiter.hpp"
#include "core/caller.hpp"

namespace tio::dbus {

class AuditTrail {
public:
    static constexpr std::chrono::seconds kRefusalInterval{10};
    static constexpr unsigned kRefusalBurst = 20;

    AuditTrail(std::string guest, audit::AuditLog log, audit::RateLimiter::Clock now = {})
        : guest_(std::move(guest)), log_(std::move(log)), refusals_(kRefusalInterval, kRefusalBurst, std::move(now)) {}
    void record(std::string event, std::string_view method = {}, const core::Caller* who = nullptr,
                std::string object = {}, std::string detail = {}, std::string error = {});

private:
    std::string guest_;
    audit::AuditLog log_;
    audit::RateLimiter refusals_;
};

}  // namespace tio::dbus
