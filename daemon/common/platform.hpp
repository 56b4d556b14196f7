#pragma once
// The confidential-computing platform a guest runs on; it decides the conversion
// order, the vIOMMU type and what the simulated hardware checks.
#include <cstdint>
#include <optional>
#include <string_view>

namespace tio {

enum class Platform : std::uint8_t { Tdx, Snp, Cca };

[[nodiscard]] constexpr std::string_view toString(Platform p) {
    switch (p) {
        case Platform::Tdx: return "tdx";
        case Platform::Snp: return "snp";
        case Platform::Cca: return "cca";
    }
    return "tdx";
}

[[nodiscard]] constexpr std::optional<Platform> parsePlatform(std::string_view s) {
    if (s == "tdx") return Platform::Tdx;
    if (s == "snp") return Platform::Snp;
    if (s == "cca") return Platform::Cca;
    return std::nullopt;
}

}  // namespace tio
