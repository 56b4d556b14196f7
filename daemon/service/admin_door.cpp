#include "service/admin_door.hpp"

namespace tio::service {

std::expected<std::unique_ptr<AdminDoor>, int> AdminDoor::open(dbus::GuestService& service, sd_event* event,
                                                               const std::string& name) {
    sd_bus* raw = nullptr;
    int r = sd_bus_open_system(&raw);
    if (r < 0) return std::unexpected(r);
    dbus::BusPtr bus(raw);
    r = service.attach(raw, core::Door::Admin);
    if (r < 0) return std::unexpected(r);
    std::unique_ptr<AdminDoor> door(new AdminDoor(service, std::move(bus)));  // detaches from here on
    r = sd_bus_request_name(raw, name.c_str(), 0);
    if (r >= 0) r = sd_bus_attach_event(raw, event, SD_EVENT_PRIORITY_NORMAL);
    if (r < 0) return std::unexpected(r);
    return door;
}

}  // namespace tio::service
