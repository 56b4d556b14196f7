#pragma once
// The admin's door: the guest's object tree on the system bus under its
// well-known name (architecture.md section 2). Detached and closed when this goes.
#include <memory>
#include <string>

#include "dbus/guest_service.hpp"
#include "dbus/sd_ptr.hpp"

namespace tio::service {

class AdminDoor {
public:
    // Connects, serves the tree, owns `name`; a negative errno when any step fails.
    [[nodiscard]] static std::expected<std::unique_ptr<AdminDoor>, int> open(dbus::GuestService& service,
                                                                             sd_event* event, const std::string& name);
    AdminDoor(const AdminDoor&) = delete;
    AdminDoor& operator=(const AdminDoor&) = delete;
    ~AdminDoor() { service_.detached(bus_.get()); }

private:
    AdminDoor(dbus::GuestService& service, dbus::BusPtr bus) : service_(service), bus_(std::move(bus)) {}
    dbus::GuestService& service_;
    dbus::BusPtr bus_;
};

}  // namespace tio::service
