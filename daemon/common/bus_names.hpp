#pragma once
// Guest names and the guest's well-known name on the system bus,
// "org.tio.Guest1.<guest>": the daemon owns it; tioctl, the demo VMM and the tests
// address it.
#include <string>
#include <string_view>

namespace tio {

inline constexpr std::string_view kGuestBusNamePrefix = "org.tio.Guest1.";

// ^[a-z][a-z0-9_]{0,31}$ (design/dbus-api.md): a valid bus name element, unit
// instance name and file name alike.
[[nodiscard]] constexpr bool validGuestName(std::string_view n) {
    if (n.empty() || n.size() > 32 || n[0] < 'a' || n[0] > 'z') return false;
    for (char c : n)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
    return true;
}

[[nodiscard]] inline std::string guestBusName(std::string_view guest) {
    return std::string(kGuestBusNamePrefix) + std::string(guest);
}

}  // namespace tio
