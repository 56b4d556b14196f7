#pragma once
// The tests' stand-in for the door's authorizer (dbus::Authorizer): a caller the
// core's mutating methods accept, root on the VMM door. Only tests may make one.
#include <unistd.h>

#include <string>

#include "core/caller.hpp"
#include "core/policy.hpp"

namespace tio::test {

struct TrustedCaller {
    static const core::AuthorizedCaller& root() {
        static const core::AuthorizedCaller who(
            core::Caller{.uid = 0, .pid = 0, .groups = {}, .door = core::Door::Vmm});
        return who;
    }
    // Root on the admin door: an administrator.
    static const core::AuthorizedCaller& admin() {
        static const core::AuthorizedCaller who(
            core::Caller{.uid = 0, .pid = 0, .groups = {}, .door = core::Door::Admin});
        return who;
    }
};

[[nodiscard]] inline const core::AuthorizedCaller& trusted() { return TrustedCaller::root(); }
[[nodiscard]] inline const core::AuthorizedCaller& trustedAdmin() { return TrustedCaller::admin(); }

// The development policy for `guest`: owned by the test's uid (and root), any device
// allowed, the contract's default limits.
[[nodiscard]] inline core::Policy anyDevice(const std::string& guest) {
    return core::Policy::development(guest, ::getuid());
}

}  // namespace tio::test
