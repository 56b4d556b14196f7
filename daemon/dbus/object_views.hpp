#pragma once
// What clients see of the model: one view (interface and properties) per object
// path, built from the core's read model alone, and the object paths themselves
// (design/dbus-api.md, "Objects"). Paths are parsed strictly: a path names an
// object only if it is exactly the path that object is published under.
#include <systemd/sd-bus.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/guest.hpp"

namespace tio::dbus {

inline constexpr const char* kRootPath = "/org/tio/Guest1";
inline constexpr const char* kGuestIface = "org.tio.Guest1";
inline constexpr const char* kDeviceIface = "org.tio.Device1";
inline constexpr const char* kViommuIface = "org.tio.VIommu1";
inline constexpr const char* kMemoryIface = "org.tio.Memory1";
inline constexpr std::string_view kDevicePathPrefix = "/org/tio/Guest1/device/";
inline constexpr std::string_view kViommuPathPrefix = "/org/tio/Guest1/viommu/";
inline constexpr std::string_view kMemoryPathPrefix = "/org/tio/Guest1/memory/";

struct ObjectPathValue {
    std::string path;
    friend bool operator==(const ObjectPathValue&, const ObjectPathValue&) = default;
};
using FeatureMap = std::map<std::string, bool>;  // a{sb}
using PropertyValue = std::variant<std::string, std::uint64_t, std::uint32_t, bool, ObjectPathValue,
                                   std::vector<ObjectPathValue>, FeatureMap>;
struct ObjectView {
    std::string iface;
    std::map<std::string, PropertyValue> properties;
};
using Views = std::map<std::string, ObjectView>;

// What the root object says beyond the model: the door-side facts.
struct ServiceFacts {
    std::string backend;        // "linux" or "sim"
    std::uint32_t clients = 0;  // VMM connections
};

[[nodiscard]] Views buildViews(const core::Guest& guest, const ServiceFacts& facts);

// "/org/tio/Guest1/device/0000_3a_00_0" (the contract's BDF path element).
[[nodiscard]] std::string devicePath(const core::Device& d);
[[nodiscard]] std::string viommuPath(core::ObjectId id);
[[nodiscard]] std::string memoryPath(core::ObjectId id);
// The object a path names in `guest`, if it is exactly that object's path.
[[nodiscard]] std::optional<core::ObjectId> deviceFromPath(const core::Guest& guest, std::string_view path);
[[nodiscard]] std::optional<core::ObjectId> idFromPath(std::string_view path, std::string_view prefix);
// NotFound naming `noun` unless `path` is `prefix` followed by an id.
[[nodiscard]] Result<core::ObjectId> objectId(std::string_view path, std::string_view prefix, std::string_view noun);

// Appends `value` to a reply in its D-Bus type; sd-bus's return convention.
int appendProperty(sd_bus_message* reply, const PropertyValue& value);

}  // namespace tio::dbus
