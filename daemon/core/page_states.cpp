#include "core/page_states.hpp"

namespace tio::core {

PageStates::PageStates(std::uint64_t base, std::uint64_t size, PageState initial) : base_(base), size_(size) {
    assign(base, base + size, initial);
}

bool PageStates::holds(std::uint64_t s, std::uint64_t e) const {
    return s < e && s >= base_ && e <= base_ + size_ && s % kPage == 0 && e % kPage == 0;
}

void PageStates::assign(std::uint64_t s, std::uint64_t e, PageState v) {
    private_.assign(pageOf(s), pageOf(e), v.attr == MemoryState::Private);
    revoked_.assign(pageOf(s), pageOf(e), v.revoked);
}

PageState PageStates::at(std::uint64_t gpa) const { return stateOf(pageOf(gpa)); }

PageStates::Run PageStates::find(std::uint64_t gpa) const {
    const std::uint64_t p = pageOf(gpa);
    const std::uint64_t last = pageOf(base_ + size_);
    const std::uint64_t start = std::max(private_.runStart(p, 0), revoked_.runStart(p, 0));
    const std::uint64_t end = std::min(private_.runEnd(p, last), revoked_.runEnd(p, last));
    return {gpaOf(start), gpaOf(end), stateOf(p)};
}

std::vector<PageStates::Run> PageStates::runs(std::uint64_t s, std::uint64_t e) const {
    std::vector<Run> out;
    forEach(s, e, [&](std::uint64_t rs, std::uint64_t re, PageState v) { out.push_back({rs, re, v}); });
    return out;
}

}  // namespace tio::core
