#pragma once
// The command layer's policy: every decision the policy file makes about a guest,
// in one place, for every door alike (a second front end calls the same core
// methods and gets the same answers). Who may call at all; which PCI functions the
// guest may claim; how many devices and memory regions it may hold; how many
// conversions per second it may make; and, when the policy is reloaded, what the
// guest already holds that the new one no longer allows (reported, never torn
// down behind the VMM's back).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/bdf.hpp"
#include "common/error.hpp"
#include "core/caller.hpp"
#include "core/object_table.hpp"
#include "core/policy.hpp"

namespace tio::core {

// Seconds on a monotonic clock; the rate limit's time base (tests give their own).
using SecondsClock = std::function<std::uint64_t()>;
[[nodiscard]] std::uint64_t monotonicSeconds();

// One thing a reloaded policy no longer allows. `device` is 0 for the guest itself.
struct PolicyFinding {
    ObjectId device = 0;
    std::string detail;
};

class Guard {
public:
    Guard(std::string guest, Policy policy, SecondsClock clock = monotonicSeconds);

    // Root and policy admins may do anything on either door; the guest's owners may
    // read and drive it on the VMM door; on the admin door everyone the bus policy
    // lets through may read.
    [[nodiscard]] bool admits(const Caller& caller, Access access) const;
    // AccessDenied unless the policy lets the guest claim `bdf`; LimitExceeded when
    // it already holds its share of devices.
    [[nodiscard]] Result<> admitDevice(const Bdf& bdf, std::size_t devices_held) const;
    [[nodiscard]] Result<> admitMemoryRegion(std::size_t regions_held) const;
    // Spends `ranges` of this second's conversion budget; LimitExceeded (spending
    // nothing) when that would exceed it.
    [[nodiscard]] Result<> takeConversions(std::size_t ranges);
    // Applies `policy` to the calls that follow and reports what the guest holds
    // that it no longer allows.
    [[nodiscard]] std::vector<PolicyFinding> replacePolicy(Policy policy,
                                                           const std::vector<std::pair<ObjectId, Bdf>>& devices,
                                                           std::size_t regions);

    [[nodiscard]] const Policy& policy() const { return policy_; }
    [[nodiscard]] const std::string& guest() const { return guest_; }

private:
    [[nodiscard]] const GuestPolicy& limits() const;

    std::string guest_;
    Policy policy_;
    SecondsClock clock_;
    std::uint64_t window_second_ = 0;
    std::uint64_t window_used_ = 0;
};

}  // namespace tio::core
