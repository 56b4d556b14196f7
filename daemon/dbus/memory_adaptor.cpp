// org.tio.Memory1 on /org/tio/Guest1/memory/N.
#include "dbus/adaptors.hpp"

namespace tio::dbus {
namespace {

int removeMemory(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    return runMethod(m, userdata, err, Access::Mutate, "Memory.Remove",
                     [&](GuestService& svc, const AuthorizedCaller& who, sd_bus_message*) -> Result<> {
                         auto id = objectId(sd_bus_message_get_path(m), kMemoryPathPrefix, "memory region");
                         return id ? svc.guest().removeMemory(who, *id) : Result<>(std::unexpected(id.error()));
                     });
}

constexpr std::uint64_t kProp = SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE;
constexpr std::uint64_t kConst = SD_BUS_VTABLE_PROPERTY_CONST;
constexpr std::uint64_t kCall = SD_BUS_VTABLE_UNPRIVILEGED;

const sd_bus_vtable kVtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD("Remove", "", "", removeMemory, kCall),
    SD_BUS_PROPERTY("Gpa", "t", getProperty, 0, kConst),
    SD_BUS_PROPERTY("Size", "t", getProperty, 0, kConst),
    SD_BUS_PROPERTY("Offset", "t", getProperty, 0, kConst),
    SD_BUS_PROPERTY("PrivateBytes", "t", getProperty, 0, kProp),
    SD_BUS_PROPERTY("SharedBytes", "t", getProperty, 0, kProp),
    SD_BUS_PROPERTY("Revoked", "b", getProperty, 0, kProp),
    SD_BUS_PROPERTY("SharedMapped", "b", getProperty, 0, kProp),
    SD_BUS_PROPERTY("PinnedBytes", "t", getProperty, 0, kProp),
    SD_BUS_VTABLE_END,
};

}  // namespace

const sd_bus_vtable* memoryVtable() { return kVtable; }

}  // namespace tio::dbus
