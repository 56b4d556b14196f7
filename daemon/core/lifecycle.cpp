#include "core/lifecycle.hpp"

namespace tio::core {
namespace {

// One name table per enum: toString and parse read the same list.
template <typename E, std::size_t N>
std::optional<E> parseWith(const std::array<std::pair<E, std::string_view>, N>& names, std::string_view s) {
    for (const auto& [value, name] : names)
        if (name == s) return value;
    return std::nullopt;
}
template <typename E, std::size_t N>
std::string_view nameWith(const std::array<std::pair<E, std::string_view>, N>& names, E e) {
    for (const auto& [value, name] : names)
        if (value == e) return name;
    return names[0].second;
}

constexpr std::array<std::pair<GuestState, std::string_view>, 3> kGuestNames = {
    {{GuestState::Empty, "empty"}, {GuestState::Active, "active"}, {GuestState::TearingDown, "tearing-down"}}};
constexpr std::array<std::pair<DeviceState, std::string_view>, 2> kDeviceNames = {
    {{DeviceState::Opened, "opened"}, {DeviceState::Attached, "attached"}}};
constexpr std::array<std::pair<TdiState, std::string_view>, 5> kTdiNames = {{{TdiState::Unlocked, "unlocked"},
                                                                             {TdiState::Locked, "locked"},
                                                                             {TdiState::Run, "run"},
                                                                             {TdiState::Error, "error"},
                                                                             {TdiState::Quarantined, "quarantined"}}};
constexpr std::array<std::pair<MemoryState, std::string_view>, 2> kMemoryNames = {
    {{MemoryState::Private, "private"}, {MemoryState::Shared, "shared"}}};

}  // namespace

std::string_view toString(GuestState s) { return nameWith(kGuestNames, s); }
std::string_view toString(DeviceState s) { return nameWith(kDeviceNames, s); }
std::string_view toString(TdiState s) { return nameWith(kTdiNames, s); }
std::string_view toString(MemoryState s) { return nameWith(kMemoryNames, s); }
std::optional<GuestState> parseGuestState(std::string_view s) { return parseWith(kGuestNames, s); }
std::optional<DeviceState> parseDeviceState(std::string_view s) { return parseWith(kDeviceNames, s); }
std::optional<TdiState> parseTdiState(std::string_view s) { return parseWith(kTdiNames, s); }
std::optional<MemoryState> parseMemoryState(std::string_view s) { return parseWith(kMemoryNames, s); }

std::string whatFirst(GuestState from, GuestState to) {
    if (to == GuestState::Active) return "the guest already has a VM (Teardown first)";
    if (from == GuestState::TearingDown) return "the guest is tearing down";
    return "guest cannot go from " + std::string(toString(from)) + " to " + std::string(toString(to));
}

std::string whatFirst(DeviceState from, DeviceState to) {
    if (from == to) return "the device is already " + std::string(toString(to));
    return "the device is " + std::string(toString(from)) + "; it cannot become " + std::string(toString(to));
}

std::string whatFirst(TdiState from, TdiState to) {
    std::string now = "the TDI is " + std::string(toString(from));
    if (from == TdiState::Quarantined) {
        return now + " (an earlier request's outcome is unknown); only Unbind, Remove or an administrator's Reset";
    }
    switch (to) {
        case TdiState::Locked: return now + "; Bind needs it unlocked (Unbind first)";
        case TdiState::Run: return now + "; RUN needs it locked (Bind first)";
        case TdiState::Unlocked: return now + "; Unbind needs it bound (Bind first)";
        case TdiState::Error: return now + "; only a locked or running TDI can fail";
        case TdiState::Quarantined: return now + "; it is already quarantined";
    }
    return now;
}

}  // namespace tio::core
