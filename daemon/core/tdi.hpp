#pragma once
// The kernel's TDISP interface state in the core's terms: one mapping, used wherever
// the daemon re-reads a TDI (a property read, the watch, a restart).
#include "core/lifecycle.hpp"
#include "kernel/iommufd.hpp"

namespace tio::core {

[[nodiscard]] constexpr TdiState toTdiState(kernel::TdispState s) {
    switch (s) {
        case kernel::TdispState::ConfigUnlocked: return TdiState::Unlocked;
        case kernel::TdispState::ConfigLocked: return TdiState::Locked;
        case kernel::TdispState::Run: return TdiState::Run;
        case kernel::TdispState::Error: return TdiState::Error;
    }
    return TdiState::Error;
}

}  // namespace tio::core
