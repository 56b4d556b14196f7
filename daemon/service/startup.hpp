#pragma once
// The steps of tio-managerd's start that decide something: where logs go, which
// policy applies, which kernel the target names.
#include <spdlog/spdlog.h>

#include <memory>
#include <optional>

#include "common/platform.hpp"
#include "core/policy.hpp"
#include "kernel/syscalls.hpp"
#include "service/options.hpp"
#include "service/private_sim.hpp"

namespace tio::service {

// Log lines go to the journal when it is there (structured: PRIORITY, and the
// key=value message), else to stderr; never to stdout.
void setUpLogging();

// The policy file's, or without one the development policy (the invoking user's
// guest, any device); nullopt (logged) when the file is invalid or lacks the guest.
[[nodiscard]] std::optional<core::Policy> loadPolicy(const Options& o);

// The command line's target, else the policy's; nullopt (logged) when neither names one.
[[nodiscard]] std::optional<Target> chooseTarget(const Options& o, const core::Policy& policy);

// The kernel the target names: the real one, or a simulator (--sim-socket's, or a
// private one started into `sim`); nullptr (logged) when it cannot be reached.
[[nodiscard]] std::unique_ptr<kernel::Syscalls> openKernel(const Target& t, const Options& o,
                                                           std::unique_ptr<PrivateSim>& sim);

// Logs a fatal start-up error; the exit code to return.
template <typename... Args>
[[nodiscard]] int fatal(int code, spdlog::format_string_t<Args...> fmt, Args&&... args) {
    spdlog::error(fmt, std::forward<Args>(args)...);
    return code;
}

}  // namespace tio::service
