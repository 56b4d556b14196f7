#pragma once
// The one place a tio::Code becomes a D-Bus error name (org.tio.Error.*).
#include <systemd/sd-bus.h>

#include <string>
#include <string_view>

#include "common/error.hpp"

namespace tio::dbus {

inline constexpr std::string_view kErrorPrefix = "org.tio.Error.";

// "org.tio.Error.<Code>": the name clients see for `code`.
[[nodiscard]] std::string errorName(Code code);

// Sets `err` from `e` and returns the negative value sd-bus expects from a handler.
// Internal errors carry a generic message: details belong in the journal only.
int setError(sd_bus_error* err, const Error& e);

}  // namespace tio::dbus
