#pragma once
// Range arithmetic on client-controlled numbers: every end is computed with an
// overflow check (style rule 23, as iommufd's viommu.c does with check_add_overflow).
#include <cstdint>
#include <optional>

namespace tio {

inline constexpr std::uint64_t kPageSize = 4096;

[[nodiscard]] constexpr std::optional<std::uint64_t> checkedEnd(std::uint64_t start, std::uint64_t size) noexcept {
    std::uint64_t end = 0;
    if (__builtin_add_overflow(start, size, &end)) return std::nullopt;
    return end;
}
[[nodiscard]] constexpr bool pageAligned(std::uint64_t v) noexcept { return (v % kPageSize) == 0; }

}  // namespace tio
