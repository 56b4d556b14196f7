#pragma once
// The random conversion sequence conversion_bench and page_state_bench both run, so
// their figures are over the same pattern: half 4 KiB, half 2 MiB (2 MiB aligned),
// anywhere in the guest, from one seed.
#include <cstdint>
#include <random>
#include <vector>

namespace tio::bench {

struct RandomConversion {
    std::uint64_t offset = 0;  // bytes from the guest's first byte
    std::uint64_t size = 0;    // 4 KiB or 2 MiB
};

inline std::vector<RandomConversion> randomConversions(std::uint64_t guest_bytes, std::uint64_t n, std::uint64_t seed) {
    constexpr std::uint64_t kSmall = 4096;
    constexpr std::uint64_t kHuge = 2ULL << 20U;
    std::mt19937_64 rng(seed);
    std::vector<RandomConversion> out;
    out.reserve(n);
    for (std::uint64_t i = 0; i < n; ++i) {
        const std::uint64_t size = (rng() & 1U) != 0 ? kHuge : kSmall;
        out.push_back({(rng() % (guest_bytes / size)) * size, size});
    }
    return out;
}

}  // namespace tio::bench
