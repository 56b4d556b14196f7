#pragma once
// The guest's audit trail as the doors write it: one record (journal line and, with a
// state directory, a tio.v1.AuditRecord) per assignment change, refusal or policy
// event, naming the caller as the door identified it.
#include <string>
#include <string_view>

#include "audit/audit_log.hpp"
#include "core/caller.hpp"

namespace tio::dbus {

class AuditTrail {
public:
    AuditTrail(std::string guest, audit::AuditLog log) : guest_(std::move(guest)), log_(std::move(log)) {}
    void record(std::string event, std::string_view method = {}, const core::Caller* who = nullptr,
                std::string object = {}, std::string detail = {}, std::string error = {});

private:
    std::string guest_;
    audit::AuditLog log_;
};

}  // namespace tio::dbus
