#include "core/lifecycle.hpp"

namespace tio::core {

std::string_view toString(GuestState s) {
    switch (s) {
        case GuestState::Empty: return "empty";
        case GuestState::Active: return "active";
        case GuestState::TearingDown: return "tearing-down";
    }
    return "empty";
}

std::string_view toString(TdiState s) {
    switch (s) {
        case TdiState::Unlocked: return "unlocked";
        case TdiState::Locked: return "locked";
        case TdiState::Run: return "run";
        case TdiState::Error: return "error";
        case TdiState::Unsupported: return "unsupported";
    }
    return "error";
}

std::string_view toString(MemoryState s) { return s == MemoryState::Private ? "private" : "shared"; }

std::optional<MemoryState> parseMemoryState(std::string_view s) {
    if (s == "private") return MemoryState::Private;
    if (s == "shared") return MemoryState::Shared;
    return std::nullopt;
}

std::string whatFirst(GuestState from, GuestState to) {
    if (to == GuestState::Active) return "the guest already has a VM (Teardown first)";
    if (from == GuestState::TearingDown) return "the guest is tearing down";
    return "guest cannot go from " + std::string(toString(from)) + " to " + std::string(toString(to));
}

std::string whatFirst(TdiState from, TdiState to) {
    const std::string now = "the TDI is " + std::string(toString(from));
    if (from == TdiState::Unsupported) return "the function has no TDISP capability";
    switch (to) {
        case TdiState::Locked: return now + "; Bind needs it unlocked (Unbind first)";
        case TdiState::Run: return now + "; RUN needs it locked (Bind first)";
        case TdiState::Unlocked: return now + "; Unbind needs it bound (Bind first)";
        case TdiState::Error: return now + "; only a locked or running TDI can fail";
        case TdiState::Unsupported: break;
    }
    return now;
}

}  // namespace tio::core
