#include "common/bdf.hpp"

#include <cstdio>

namespace tio {
namespace {

std::optional<unsigned> hexField(std::string_view s) {
    unsigned v = 0;
    for (char c : s) {
        if (c >= '0' && c <= '9') v = v * 16 + static_cast<unsigned>(c - '0');
        else if (c >= 'a' && c <= 'f') v = v * 16 + static_cast<unsigned>(c - 'a' + 10);
        else return std::nullopt;
    }
    return v;
}

}  // namespace

std::optional<Bdf> Bdf::parse(std::string_view t) {
    if (t.size() != 12 || t[4] != ':' || t[7] != ':' || t[10] != '.') return std::nullopt;
    const auto domain = hexField(t.substr(0, 4));
    const auto bus = hexField(t.substr(5, 2));
    const auto dev = hexField(t.substr(8, 2));
    const auto fn = hexField(t.substr(11, 1));
    if (!domain || !bus || !dev || !fn || *dev > 0x1f || *fn > 7) return std::nullopt;
    return Bdf{static_cast<std::uint16_t>(*domain), static_cast<std::uint8_t>(*bus), static_cast<std::uint8_t>(*dev),
               static_cast<std::uint8_t>(*fn)};
}

std::string Bdf::toString() const {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04x:%02x:%02x.%x", domain, bus, device, function);
    return buf;
}

std::string Bdf::objectName() const {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04x_%02x_%02x_%x", domain, bus, device, function);
    return buf;
}

}  // namespace tio
