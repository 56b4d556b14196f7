#include "core/policy.hpp"

#include <grp.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "common/bus_names.hpp"
#include "common/platform.hpp"

namespace tio::core {
namespace {

using nlohmann::json;

// Only the listed keys may appear in an object.
Result<> onlyKeys(const json& j, std::initializer_list<std::string_view> keys, const std::string& where) {
    if (!j.is_object()) return fail(Code::InvalidArgument, where + ": must be an object");
    for (const auto& [k, v] : j.items()) {
        bool known = false;
        for (auto allowed : keys) known = known || k == allowed;
        if (!known) return fail(Code::InvalidArgument, where + "." + k + ": unknown key");
    }
    return {};
}

Result<Principals> principals(const json& j, const std::string& where) {
    if (auto r = onlyKeys(j, {"uids", "groups"}, where); !r) return std::unexpected(r.error());
    Principals p;
    if (j.contains("uids")) {
        if (!j["uids"].is_array()) return fail(Code::InvalidArgument, where + ".uids: must be an array");
        for (const auto& u : j["uids"]) {
            if (!u.is_number_unsigned() || u.get<std::uint64_t>() >= 0xffffffffULL) {
                return fail(Code::InvalidArgument, where + ".uids: entries are uids (0..4294967294)");
            }
            p.uids.insert(static_cast<uid_t>(u.get<std::uint64_t>()));
        }
    }
    if (j.contains("groups")) {
        if (!j["groups"].is_array()) return fail(Code::InvalidArgument, where + ".groups: must be an array");
        for (const auto& g : j["groups"]) {
            if (!g.is_string()) return fail(Code::InvalidArgument, where + ".groups: entries are group names");
            // A group that does not exist on this host admits nobody; that is not an error
            // (tio-admin may be created later by sysusers).
            if (const group* gr = ::getgrnam(g.get<std::string>().c_str())) p.gids.insert(gr->gr_gid);
        }
    }
    return p;
}

Result<DevicePattern> devicePattern(const json& j, const std::string& where) {
    if (!j.is_string()) return fail(Code::InvalidArgument, where + ": must be a string");
    std::string s = j.get<std::string>();
    DevicePattern p;
    if (s.size() == 12 && s.ends_with(".*")) {
        p.any_function = true;
        s.replace(11, 1, "0");
    }
    const auto bdf = Bdf::parse(s);
    if (!bdf) return fail(Code::InvalidArgument, where + ": not a BDF (dddd:bb:dd.f or dddd:bb:dd.*)");
    p.bdf = *bdf;
    return p;
}

Result<std::uint32_t> limit(const json& j, const char* key, std::uint32_t fallback, const std::string& where,
                            std::uint64_t max = 65536) {
    if (!j.contains(key)) return fallback;
    const auto& v = j[key];
    if (!v.is_number_unsigned() || v.get<std::uint64_t>() > max) {
        return fail(Code::InvalidArgument, where + "." + key + ": must be an integer 0.." + std::to_string(max));
    }
    return static_cast<std::uint32_t>(v.get<std::uint64_t>());
}

}  // namespace

bool validPlatformName(std::string_view n) { return parseTarget(n).has_value(); }

bool Principals::admits(uid_t uid, const std::vector<gid_t>& groups) const {
    if (uids.contains(uid)) return true;
    for (gid_t g : groups)
        if (gids.contains(g)) return true;
    return false;
}

bool DevicePattern::matches(const Bdf& b) const { return any_function ? b.dsm() == bdf.dsm() : b == bdf; }

Result<Policy> Policy::parse(const std::string& text) {
    const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return fail(Code::InvalidArgument, "policy: not valid JSON");
    if (auto r = onlyKeys(j, {"version", "admins", "guests"}, "policy"); !r) return std::unexpected(r.error());
    if (!j.contains("version") || j["version"] != 1) return fail(Code::InvalidArgument, "policy.version: must be 1");
    Policy p;
    if (j.contains("admins")) {
        auto a = principals(j["admins"], "policy.admins");
        if (!a) return std::unexpected(a.error());
        p.admins = std::move(*a);
    }
    if (j.contains("guests")) {
        if (!j["guests"].is_object()) return fail(Code::InvalidArgument, "policy.guests: must be an object");
        for (const auto& [name, g] : j["guests"].items()) {
            const std::string where = "policy.guests." + name;
            if (!validGuestName(name)) return fail(Code::InvalidArgument, where + ": invalid guest name");
            if (auto r = onlyKeys(g, {"owners", "devices", "limits", "platform"}, where); !r) {
                return std::unexpected(r.error());
            }
            GuestPolicy gp;
            if (g.contains("platform")) {
                if (!g["platform"].is_string() || !validPlatformName(g["platform"].get<std::string>())) {
                    return fail(Code::InvalidArgument, where + ".platform: one of " + targetNames());
                }
                gp.platform = g["platform"].get<std::string>();
            }
            if (g.contains("owners")) {
                auto o = principals(g["owners"], where + ".owners");
                if (!o) return std::unexpected(o.error());
                gp.owners = std::move(*o);
            }
            if (g.contains("devices")) {
                if (!g["devices"].is_array()) return fail(Code::InvalidArgument, where + ".devices: must be an array");
                for (const auto& d : g["devices"]) {
                    auto dp = devicePattern(d, where + ".devices");
                    if (!dp) return std::unexpected(dp.error());
                    gp.devices.push_back(*dp);
                }
            }
            if (g.contains("limits")) {
                const auto& l = g["limits"];
                if (auto r = onlyKeys(l, {"devices", "memory_regions", "conversions_per_second"}, where + ".limits");
                    !r) {
                    return std::unexpected(r.error());
                }
                auto rate = limit(l, "conversions_per_second", 0, where + ".limits", 10000000);
                if (!rate) return std::unexpected(rate.error());
                gp.max_conversions_per_second = *rate;
                auto devs = limit(l, "devices", gp.max_devices, where + ".limits");
                if (!devs) return std::unexpected(devs.error());
                auto regions = limit(l, "memory_regions", gp.max_memory_regions, where + ".limits");
                if (!regions) return std::unexpected(regions.error());
                gp.max_devices = *devs;
                gp.max_memory_regions = *regions;
            }
            p.guests.emplace(name, std::move(gp));
        }
    }
    return p;
}

Result<Policy> Policy::load(const std::string& path) {
    std::ifstream in(path);
    if (!in) return fail(Code::NotFound, "cannot read policy " + path);
    std::ostringstream text;
    text << in.rdbuf();
    return parse(text.str());
}

bool Policy::allowsDevice(const std::string& name, const Bdf& bdf) const {
    const GuestPolicy* g = guest(name);
    if (g == nullptr) return false;
    if (g->any_device) return true;
    for (const auto& p : g->devices)
        if (p.matches(bdf)) return true;
    return false;
}

Policy Policy::development(const std::string& name, uid_t owner) {
    Policy p;
    GuestPolicy g;
    g.owners.uids = {0, owner};
    g.any_device = true;
    p.guests.emplace(name, std::move(g));
    return p;
}

const GuestPolicy* Policy::guest(const std::string& name) const {
    auto it = guests.find(name);
    return it == guests.end() ? nullptr : &it->second;
}

}  // namespace tio::core
