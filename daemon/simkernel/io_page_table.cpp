#include "simkernel/io_page_table.hpp"

#include <algorithm>
#include <bit>
#include <optional>

namespace tio::sim {
namespace {

constexpr std::array<unsigned, 3> kShifts = {kShift1G, kShift2M, kShift4K};

std::size_t slot(unsigned shift) { return shift == kShift4K ? 0 : shift == kShift2M ? 1 : 2; }

unsigned nextLower(unsigned shift) { return shift == kShift1G ? kShift2M : kShift4K; }

std::uint64_t roundUp(std::uint64_t v, std::uint64_t size) { return (v + size - 1) & ~(size - 1); }

// The greedy rule iommu_map() follows, one level at a time: the largest size up to
// max_shift of which [s, e) holds at least one aligned entry, and where those
// entries start and end; the rest of [s, e) falls to smaller sizes on either side.
struct Body {
    unsigned shift = kShift4K;
    std::uint64_t start = 0;
    std::uint64_t end = 0;
};

std::optional<Body> bodyOf(std::uint64_t s, std::uint64_t e, unsigned max_shift) {
    for (unsigned sh : kShifts) {
        if (sh > max_shift) continue;
        const std::uint64_t size = 1ULL << sh;
        const std::uint64_t a = roundUp(s, size);
        const std::uint64_t b = e & ~(size - 1);
        if (a < b) return Body{sh, a, b};
    }
    return std::nullopt;
}

void decomposeInto(std::uint64_t s, std::uint64_t e, unsigned max_shift, LeafCounts& c) {
    if (s >= e) return;
    const auto body = bodyOf(s, e, max_shift);
    if (!body) return;
    c.n[slot(body->shift)] += (body->end - body->start) >> body->shift;
    if (body->shift == kShift4K) return;
    decomposeInto(s, body->start, nextLower(body->shift), c);
    decomposeInto(body->end, e, nextLower(body->shift), c);
}

std::uint64_t pages(std::uint64_t bytes) { return bytes >> kShift4K; }

}  // namespace

unsigned usableShift(std::uint64_t file_delta, unsigned limit_shift) {
    const unsigned aligned = file_delta == 0 ? 64U : static_cast<unsigned>(std::countr_zero(file_delta));
    const unsigned cap = std::min(aligned, limit_shift);
    for (unsigned sh : kShifts)
        if (sh <= cap) return sh;
    return kShift4K;
}

LeafCounts decompose(std::uint64_t s, std::uint64_t e, unsigned max_shift) {
    LeafCounts c;
    decomposeInto(s, e, max_shift, c);
    return c;
}

std::pair<std::uint64_t, unsigned> leafOf(std::uint64_t s, std::uint64_t e, unsigned max_shift, std::uint64_t v) {
    const auto body = bodyOf(s, e, max_shift);
    if (!body || body->shift == kShift4K || (v >= body->start && v < body->end)) {
        const unsigned shift = body ? body->shift : kShift4K;
        return {v & ~((1ULL << shift) - 1), shift};
    }
    return v < body->start ? leafOf(s, body->start, nextLower(body->shift), v)
                           : leafOf(body->end, e, nextLower(body->shift), v);
}

std::pair<std::uint64_t, std::uint64_t> IoPageTable::widen(std::uint64_t s, std::uint64_t e) const {
    auto it = segments_.upper_bound(s);
    if (it != segments_.begin()) {
        auto prev = std::prev(it);
        if (prev->second.end > s) s = prev->first;
    }
    auto last = segments_.lower_bound(e);
    if (last != segments_.begin()) {
        auto prev = std::prev(last);
        if (prev->second.end > e) e = prev->second.end;
    }
    return {s, e};
}

TableChange IoPageTable::replace(std::uint64_t s, std::uint64_t e, const Segments& fresh, bool restructure) {
    TableChange ch;
    auto first = segments_.lower_bound(s);
    auto last = segments_.lower_bound(e);
    std::uint64_t old_pages = 0;
    std::uint64_t new_pages = 0;
    std::uint64_t both_pages = 0;
    for (auto it = first; it != last; ++it) {
        ch.removed += decompose(it->first, it->second.end, it->second.max_shift);
        old_pages += pages(it->second.end - it->first);
    }
    for (const auto& [fs, f] : fresh) {
        ch.added += decompose(fs, f.end, f.max_shift);
        new_pages += pages(f.end - fs);
    }
    // Pages mapped before and after must keep their translation (two-pointer overlap).
    auto o = first;
    auto n = fresh.begin();
    while (o != last && n != fresh.end()) {
        const std::uint64_t lo = std::max(o->first, n->first);
        const std::uint64_t hi = std::min(o->second.end, n->second.end);
        if (lo < hi) {
            both_pages += pages(hi - lo);
            if (o->second.file != n->second.file || o->second.file_delta != n->second.file_delta) {
                ch.retargeted_pages += pages(hi - lo);
            }
        }
        if (o->second.end <= n->second.end) ++o;
        else ++n;
    }
    ch.pages_unmapped = old_pages - both_pages;
    ch.pages_mapped = new_pages - both_pages;
    if (restructure) {
        // A split turns one entry into 512 of the next size down; a merge the reverse.
        const auto net1g = static_cast<std::int64_t>(ch.removed.n[2]) - static_cast<std::int64_t>(ch.added.n[2]);
        const auto net2m =
            static_cast<std::int64_t>(ch.removed.n[1]) + 512 * net1g - static_cast<std::int64_t>(ch.added.n[1]);
        for (std::int64_t net : {net1g, net2m}) {
            if (net > 0) ch.splits += static_cast<std::uint64_t>(net);
            else ch.merges += static_cast<std::uint64_t>(-net);
        }
    }
    segments_.erase(first, last);
    segments_.insert(fresh.begin(), fresh.end());
    for (std::size_t i = 0; i < 3; ++i) counts_.n[i] = counts_.n[i] - ch.removed.n[i] + ch.added.n[i];
    return ch;
}

std::optional<Leaf> IoPageTable::leafAt(std::uint64_t iova) const {
    auto it = segments_.upper_bound(iova);
    if (it == segments_.begin()) return std::nullopt;
    --it;
    if (iova >= it->second.end) return std::nullopt;
    const auto [base, shift] = leafOf(it->first, it->second.end, it->second.max_shift, iova);
    return Leaf{.iova = base,
                .shift = shift,
                .file = it->second.file,
                .file_offset = base + it->second.file_delta,
                .writeable = it->second.writeable};
}

}  // namespace tio::sim
