#pragma once
// The confidential-computing platform a guest runs on (it decides the conversion
// order, the vIOMMU type and what the simulated hardware checks), and the target
// the daemon drives: a platform on a kernel backend, the real one or the simulated
// kernel. Written "tdx" (Linux) or "sim-tdx" (the simulator) on the command line
// and in the policy; this is the one place that spelling is known.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tio {

enum class Platform : std::uint8_t { Tdx, Snp, Cca };
enum class Backend : std::uint8_t { Linux, Sim };

inline constexpr std::array kPlatforms = {Platform::Tdx, Platform::Snp, Platform::Cca};

[[nodiscard]] constexpr std::string_view toString(Platform p) {
    switch (p) {
        case Platform::Tdx: return "tdx";
        case Platform::Snp: return "snp";
        case Platform::Cca: return "cca";
    }
    return "tdx";
}

[[nodiscard]] constexpr std::optional<Platform> parsePlatform(std::string_view s) {
    for (Platform p : kPlatforms)
        if (toString(p) == s) return p;
    return std::nullopt;
}

// "linux" or "sim": the Backend property and the snapshot's backend field.
[[nodiscard]] constexpr std::string_view toString(Backend b) { return b == Backend::Sim ? "sim" : "linux"; }

struct Target {
    Platform platform = Platform::Tdx;
    Backend backend = Backend::Linux;
    friend constexpr bool operator==(const Target&, const Target&) = default;
};

inline constexpr std::string_view kSimTargetPrefix = "sim-";

[[nodiscard]] constexpr std::optional<Target> parseTarget(std::string_view s) {
    const bool sim = s.starts_with(kSimTargetPrefix);
    const auto platform = parsePlatform(sim ? s.substr(kSimTargetPrefix.size()) : s);
    if (!platform) return std::nullopt;
    return Target{*platform, sim ? Backend::Sim : Backend::Linux};
}

[[nodiscard]] inline std::string toString(const Target& t) {
    return (t.backend == Backend::Sim ? std::string(kSimTargetPrefix) : std::string()) +
           std::string(toString(t.platform));
}

// "tdx, snp, cca, sim-tdx, sim-snp, sim-cca": for messages that list the choices.
[[nodiscard]] inline std::string targetNames() {
    std::string out;
    for (Backend b : {Backend::Linux, Backend::Sim}) {
        for (Platform p : kPlatforms) out += (out.empty() ? "" : ", ") + toString(Target{p, b});
    }
    return out;
}

}  // namespace tio
