#pragma once
// A PCI function address, parsed by a strict grammar (style rule 23): exactly
// "dddd:bb:dd.f", lowercase hex, device <= 0x1f, function <= 7. Nothing else is a BDF:
// no whitespace, no sign, no path characters, so a Bdf can never smuggle "../" into
// a sysfs path built from it.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tio {

struct Bdf {
    std::uint16_t domain = 0;
    std::uint8_t bus = 0;
    std::uint8_t device = 0;    // 0..31
    std::uint8_t function = 0;  // 0..7

    [[nodiscard]] static std::optional<Bdf> parse(std::string_view text);
    [[nodiscard]] std::string toString() const;    // "0000:3a:00.0"
    [[nodiscard]] std::string objectName() const;  // "0000_3a_00_0" (D-Bus path element)
    [[nodiscard]] Bdf dsm() const { return Bdf{domain, bus, device, 0}; }

    friend bool operator==(const Bdf&, const Bdf&) = default;
    friend auto operator<=>(const Bdf&, const Bdf&) = default;
};

}  // namespace tio
