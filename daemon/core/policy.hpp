#pragma once
// /etc/tio-manager/policy.json (design/dbus-api.md, "Policy file"): which guests exist,
// who owns each guest's door, which PCI functions each may claim, limits, admins.
// Parsed strictly: an unknown key, a wrong type or a malformed BDF pattern is an
// error naming the field, and the old policy stays in force.
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/bdf.hpp"
#include "common/error.hpp"

namespace tio::core {

struct Principals {
    std::set<uid_t> uids;
    std::set<gid_t> gids;  // group names resolved at load time
    [[nodiscard]] bool admits(uid_t uid, const std::vector<gid_t>& groups) const;
};

// "0000:3b:00.1" or "0000:3b:00.*" (every function of a device).
struct DevicePattern {
    Bdf bdf;
    bool any_function = false;
    [[nodiscard]] bool matches(const Bdf& b) const;
};

struct GuestPolicy {
    Principals owners;
    std::vector<DevicePattern> devices;
    bool any_device = false;                       // only the built-in development policy sets this
    std::uint32_t max_devices = 8;                 // the contract's example value
    std::uint32_t max_memory_regions = 64;         // idem
    std::uint32_t max_conversions_per_second = 0;  // ranges converted per second; 0 = no limit
    std::string platform;  // tdx, snp, cca, sim-tdx, sim-snp, sim-cca; empty = given on the command line
};

struct Policy {
    Principals admins;
    std::map<std::string, GuestPolicy> guests;

    [[nodiscard]] static Result<Policy> parse(const std::string& json_text);
    [[nodiscard]] static Result<Policy> load(const std::string& path);
    [[nodiscard]] const GuestPolicy* guest(const std::string& name) const;
    // Whether guest `name` may claim `bdf`.
    [[nodiscard]] bool allowsDevice(const std::string& name, const Bdf& bdf) const;
    // Without a policy file (development, tests): the guest belongs to `owner` (and
    // root) and may claim any function. A packaged daemon always runs with a file.
    [[nodiscard]] static Policy development(const std::string& name, uid_t owner);
};

// The platforms a policy may name for a guest (the daemon's --platform values).
[[nodiscard]] bool validPlatformName(std::string_view name);

}  // namespace tio::core
