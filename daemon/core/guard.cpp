#include "core/guard.hpp"

#include <chrono>

namespace tio::core {

std::uint64_t monotonicSeconds() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

Guard::Guard(std::string guest, Policy policy, SecondsClock clock)
    : guest_(std::move(guest)), policy_(std::move(policy)), clock_(std::move(clock)) {}

const GuestPolicy& Guard::limits() const {
    // A guest the policy does not name keeps the contract's default limits (and may
    // claim nothing: allowsDevice answers no).
    static const GuestPolicy kDefaults;
    const GuestPolicy* gp = policy_.guest(guest_);
    return gp != nullptr ? *gp : kDefaults;
}

bool Guard::admits(const Caller& caller, Access access) const {
    if (caller.uid == 0 || policy_.admins.admits(caller.uid, caller.groups)) return true;
    if (caller.door == Door::Admin) return access == Access::Read;
    const GuestPolicy* gp = policy_.guest(guest_);
    return gp != nullptr && gp->owners.admits(caller.uid, caller.groups);
}

Result<> Guard::admitDevice(const Bdf& bdf, std::size_t devices_held) const {
    if (!policy_.allowsDevice(guest_, bdf)) {
        return fail(Code::AccessDenied, bdf.toString() + " is not in guest " + guest_ + "'s policy");
    }
    if (devices_held >= limits().max_devices) {
        return fail(Code::LimitExceeded, "the policy allows " + std::to_string(limits().max_devices) + " devices");
    }
    return {};
}

Result<> Guard::admitMemoryRegion(std::size_t regions_held) const {
    if (regions_held >= limits().max_memory_regions) {
        return fail(Code::LimitExceeded,
                    "the policy allows " + std::to_string(limits().max_memory_regions) + " memory regions");
    }
    return {};
}

Result<> Guard::takeConversions(std::size_t ranges) {
    const std::uint32_t per_second = limits().max_conversions_per_second;
    if (per_second == 0) return {};
    const std::uint64_t now = clock_();
    if (now != window_second_) {
        window_second_ = now;
        window_used_ = 0;
    }
    if (window_used_ + ranges > per_second) {
        return fail(Code::LimitExceeded, "the policy allows " + std::to_string(per_second) + " conversions per second");
    }
    window_used_ += ranges;
    return {};
}

std::vector<PolicyFinding> Guard::replacePolicy(Policy policy, const std::vector<std::pair<ObjectId, Bdf>>& devices,
                                                std::size_t regions) {
    policy_ = std::move(policy);
    std::vector<PolicyFinding> findings;
    const GuestPolicy* gp = policy_.guest(guest_);
    if (gp == nullptr) {
        findings.push_back({0, "guest " + guest_ + " is no longer in the policy; its objects stay until torn down"});
        return findings;
    }
    for (const auto& [id, bdf] : devices) {
        if (policy_.allowsDevice(guest_, bdf)) continue;
        findings.push_back(
            {id, bdf.toString() + " is no longer allowed by the policy; it stays assigned until removed"});
    }
    if (devices.size() > gp->max_devices || regions > gp->max_memory_regions) {
        findings.push_back({0, "the guest holds more devices or memory regions than the new limits allow"});
    }
    return findings;
}

}  // namespace tio::core
