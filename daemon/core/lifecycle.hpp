#pragma once
// The lifecycles the daemon enforces, one transition table each (style rule 13):
// every state change goes through transition(), which refuses any pair that is not
// in the table with InvalidState and a message naming the step that must come first.
// The one way around a table is force(), for adopting a state the kernel reports
// (a restart, a TDI that failed behind the daemon's back): it returns the line that
// says so, which the caller must log or audit.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/error.hpp"

namespace tio::core {

enum class GuestState : std::uint8_t { Empty, Active, TearingDown };
// A device of the guest: claimed and its cdev open, then bound to the guest's
// iommufd and attached to the nest-parent page table.
enum class DeviceState : std::uint8_t { Opened, Attached };
// The TDISP interface state of a TDI-capable function (whether it is capable is a
// property of the function, Device::tdisp_capable, not a state). Quarantined is the
// daemon's, not TDISP's: a state-changing TSM request whose outcome is uncertain
// leaves the TDI in a state nobody knows, so nothing but Unbind, Remove and an
// administrator's Reset may touch it until the kernel's word is read again.
enum class TdiState : std::uint8_t { Unlocked, Locked, Run, Error, Quarantined };
enum class MemoryState : std::uint8_t { Private, Shared };

[[nodiscard]] std::string_view toString(GuestState s);
[[nodiscard]] std::string_view toString(DeviceState s);
[[nodiscard]] std::string_view toString(TdiState s);
[[nodiscard]] std::string_view toString(MemoryState s);
[[nodiscard]] std::optional<GuestState> parseGuestState(std::string_view s);
[[nodiscard]] std::optional<DeviceState> parseDeviceState(std::string_view s);
[[nodiscard]] std::optional<TdiState> parseTdiState(std::string_view s);
[[nodiscard]] std::optional<MemoryState> parseMemoryState(std::string_view s);

template <typename State>
struct Transition {
    State from;
    State to;
};

// Guest: a VM makes it active; Teardown passes through tearing-down back to empty.
inline constexpr std::array kGuestTransitions = {
    Transition<GuestState>{GuestState::Empty, GuestState::Active},
    Transition<GuestState>{GuestState::Active, GuestState::TearingDown},
    Transition<GuestState>{GuestState::Empty, GuestState::TearingDown},
    Transition<GuestState>{GuestState::TearingDown, GuestState::Empty},
};

// Device: opened, then attached (VFIO_DEVICE_BIND_IOMMUFD + ATTACH_IOMMUFD_PT).
inline constexpr std::array kDeviceTransitions = {
    Transition<DeviceState>{DeviceState::Opened, DeviceState::Attached},
};

// TDI (PCIe TDISP): Bind locks, the guest's START request runs, a config write or
// reset while locked/running is an error, Unbind (STOP) returns from any bound state.
// Any state-changing request may end in quarantine; only Unbind (or an
// administrator's Reset, which re-reads the kernel's state) leaves it.
inline constexpr std::array kTdiTransitions = {
    Transition<TdiState>{TdiState::Unlocked, TdiState::Locked},
    Transition<TdiState>{TdiState::Locked, TdiState::Run},
    Transition<TdiState>{TdiState::Locked, TdiState::Error},
    Transition<TdiState>{TdiState::Run, TdiState::Error},
    Transition<TdiState>{TdiState::Locked, TdiState::Unlocked},
    Transition<TdiState>{TdiState::Run, TdiState::Unlocked},
    Transition<TdiState>{TdiState::Error, TdiState::Unlocked},
    Transition<TdiState>{TdiState::Unlocked, TdiState::Quarantined},
    Transition<TdiState>{TdiState::Locked, TdiState::Quarantined},
    Transition<TdiState>{TdiState::Run, TdiState::Quarantined},
    Transition<TdiState>{TdiState::Error, TdiState::Quarantined},
    Transition<TdiState>{TdiState::Quarantined, TdiState::Unlocked},
};

template <typename State, std::size_t N>
[[nodiscard]] constexpr bool permitted(const std::array<Transition<State>, N>& table, State from, State to) {
    for (const auto& t : table)
        if (t.from == from && t.to == to) return true;
    return false;
}

// What must happen before `to` can be reached from `from` (the InvalidState message).
[[nodiscard]] std::string whatFirst(GuestState from, GuestState to);
[[nodiscard]] std::string whatFirst(DeviceState from, DeviceState to);
[[nodiscard]] std::string whatFirst(TdiState from, TdiState to);

// InvalidState naming the missing step unless the table allows from -> to.
template <typename State, std::size_t N>
[[nodiscard]] Result<> check(const std::array<Transition<State>, N>& table, State from, State to) {
    if (!permitted(table, from, to)) return fail(Code::InvalidState, whatFirst(from, to));
    return {};
}

// Moves `state` to `to` if the table allows it; InvalidState naming the missing step otherwise.
template <typename State, std::size_t N>
[[nodiscard]] Result<> transition(const std::array<Transition<State>, N>& table, State& state, State to) {
    if (auto r = check(table, state, to); !r) return r;
    state = to;
    return {};
}

// Sets `state` to what the kernel says it is, table or not; returns the line to log
// (empty when nothing changed).
template <typename State>
[[nodiscard]] std::string force(State& state, State to, std::string_view why) {
    if (state == to) return {};
    std::string line = std::string(toString(state)) + " -> " + std::string(toString(to)) + ": " + std::string(why);
    state = to;
    return line;
}

}  // namespace tio::core
