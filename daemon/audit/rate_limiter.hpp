#pragma once
// journald's rate limit, for audit records a caller can provoke at will (refusals):
// per key (the refused peer's uid) at most `burst` records in each `interval`; the
// rest are counted, and the first record let through afterwards reports how many
// were suppressed. Memory is bounded: windows that ended and owe no report are
// dropped once there are many.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>

namespace tio::audit {

class RateLimiter {
public:
    using Clock = std::function<std::chrono::steady_clock::time_point()>;

    // An empty `now` is the steady clock.
    RateLimiter(std::chrono::steady_clock::duration interval, unsigned burst, Clock now = {})
        : interval_(interval), burst_(burst), now_(now ? std::move(now) : Clock(std::chrono::steady_clock::now)) {}

    struct Verdict {
        bool write = true;             // this record may be written
        std::uint64_t suppressed = 0;  // records of this key dropped since the last report
    };
    // Takes one record of `key`. A verdict with `suppressed` > 0 is owed to the log
    // exactly once (the count starts again).
    [[nodiscard]] Verdict admit(std::uint64_t key);

private:
    struct Window {
        std::chrono::steady_clock::time_point start;
        unsigned used = 0;
        std::uint64_t suppressed = 0;
    };
    static constexpr std::size_t kPruneAbove = 256;

    std::chrono::steady_clock::duration interval_;
    unsigned burst_;
    Clock now_;
    std::map<std::uint64_t, Window> windows_;
};

}  // namespace tio::audit
