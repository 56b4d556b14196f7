// org.tio.VIommu1 on /org/tio/Guest1/viommu/N.
#include "dbus/adaptors.hpp"

namespace tio::dbus {
namespace {

int destroyViommu(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    return runMethod(m, userdata, err, Access::Mutate, "VIommu.Destroy",
                     [&](GuestService& svc, const AuthorizedCaller& who, sd_bus_message*) -> Result<> {
                         auto id = objectId(sd_bus_message_get_path(m), kViommuPathPrefix, "vIOMMU");
                         return id ? svc.guest().destroyViommu(who, *id) : Result<>(std::unexpected(id.error()));
                     });
}

constexpr std::uint64_t kProp = SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE;
constexpr std::uint64_t kConst = SD_BUS_VTABLE_PROPERTY_CONST;
constexpr std::uint64_t kCall = SD_BUS_VTABLE_UNPRIVILEGED;

const sd_bus_vtable kVtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD("Destroy", "", "", destroyViommu, kCall),
    SD_BUS_PROPERTY("Id", "u", getProperty, 0, kConst),
    SD_BUS_PROPERTY("Type", "s", getProperty, 0, kConst),
    SD_BUS_PROPERTY("VDevices", "ao", getProperty, 0, kProp),
    SD_BUS_VTABLE_END,
};

}  // namespace

const sd_bus_vtable* viommuVtable() { return kVtable; }

}  // namespace tio::dbus
