#include "audit/rate_limiter.hpp"

#include <iterator>

namespace tio::audit {

RateLimiter::Verdict RateLimiter::admit(std::uint64_t key) {
    const auto now = now_();
    if (windows_.size() > kPruneAbove) {
        for (auto it = windows_.begin(); it != windows_.end();) {
            const bool idle = now - it->second.start >= interval_ && it->second.suppressed == 0;
            it = idle ? windows_.erase(it) : std::next(it);
        }
    }
    auto [it, fresh] = windows_.try_emplace(key, Window{.start = now});
    Window& w = it->second;
    if (!fresh && now - w.start >= interval_) {
        w.start = now;
        w.used = 0;
    }
    if (w.used >= burst_) {
        ++w.suppressed;
        return {.write = false, .suppressed = 0};
    }
    ++w.used;
    const std::uint64_t owed = w.suppressed;
    w.suppressed = 0;
    return {.write = true, .suppressed = owed};
}

}  // namespace tio::audit
