#include "common/page_set.hpp"

#include <algorithm>
#include <bit>
#include <iterator>

namespace tio {
namespace {

constexpr std::uint64_t kAllOnes = ~std::uint64_t{0};

// Bits [lo, hi) of a word, 0 <= lo < hi <= 64.
constexpr std::uint64_t bitsBetween(unsigned lo, unsigned hi) {
    const std::uint64_t upto = hi == 64 ? kAllOnes : (std::uint64_t{1} << hi) - 1;
    return upto & (kAllOnes << lo);
}

// The first of `n` runs whose field `key` is above x: std::upper_bound without the
// branch per step (a mispredicted branch at each of ~10 steps was most of what a
// small conversion's planning cost).
template <typename RunT, typename Key>
std::size_t firstAbove(const RunT* runs, std::size_t n, std::uint32_t x, Key key) {
    if (n == 0) return 0;
    const RunT* base = runs;
    while (n > 1) {
        const std::size_t half = n / 2;
        // The next step probes one of two runs, whichever this comparison picks: both
        // are fetched now, so its cache miss overlaps this one's instead of following it.
        const std::size_t next = (n - half) / 2;
        const std::size_t probe = next == 0 ? 0 : next - 1;
        __builtin_prefetch(base + probe);
        __builtin_prefetch(base + half + probe);
        // Arithmetic, not a conditional: g++ 12 turns the conditional into a branch.
        base += half * static_cast<std::size_t>(key(base[half - 1]) <= x);
        n -= half;
    }
    return static_cast<std::size_t>(base - runs) + (key(*base) <= x ? 1 : 0);
}

}  // namespace

// ---- Chunk --------------------------------------------------------------------------

PageSet::Chunk PageSet::Chunk::full() {
    Chunk c;
    c.runs_.reserve(1);
    c.runs_.push_back({0, static_cast<std::uint32_t>(kChunkPages)});
    return c;
}

std::vector<PageSet::Run>::const_iterator PageSet::Chunk::firstStartingAfter(std::uint32_t x) const {
    return runs_.begin() +
           static_cast<std::ptrdiff_t>(firstAbove(runs_.data(), runs_.size(), x, [](const Run& r) { return r.start; }));
}

std::vector<PageSet::Run>::const_iterator PageSet::Chunk::firstEndingAfter(std::uint32_t x) const {
    return runs_.begin() +
           static_cast<std::ptrdiff_t>(firstAbove(runs_.data(), runs_.size(), x, [](const Run& r) { return r.end; }));
}

bool PageSet::Chunk::contains(std::uint32_t off) const {
    if (bits_) return ((bits_[off / 64] >> (off % 64)) & 1U) != 0;
    auto it = firstStartingAfter(off);
    return it != runs_.begin() && std::prev(it)->end > off;
}

bool PageSet::Chunk::allMembers() const {
    if (!bits_) return runs_.size() == 1 && runs_[0].start == 0 && runs_[0].end == kChunkPages;
    return bitmap_runs_ == 1 && (bits_[0] & 1U) != 0 && (bits_[kWords - 1] >> 63U) != 0;
}

std::uint32_t PageSet::Chunk::scanBits(std::uint32_t off, bool member) const {
    std::size_t i = off / 64;
    auto differing = [&](std::size_t w) { return member ? ~bits_[w] : bits_[w]; };
    std::uint64_t w = differing(i) & (kAllOnes << (off % 64));
    while (w == 0) {
        if (++i == kWords) return kChunkPages;
        w = differing(i);
    }
    return static_cast<std::uint32_t>(i * 64 + static_cast<unsigned>(std::countr_zero(w)));
}

std::uint32_t PageSet::Chunk::next(std::uint32_t off, bool member) const {
    if (bits_) return scanBits(off, member);
    const Probe p = probe(off);
    return p.member == member ? p.end : off;
}

PageSet::Chunk::Probe PageSet::Chunk::probe(std::uint32_t off) const {
    if (bits_) {
        const bool member = contains(off);
        return {off > 0 && contains(off - 1), member, scanBits(off, member)};
    }
    // The first run ending after off: either off is in it, or it is the next one. off - 1
    // is in it too when it starts before off, or in the run before, if that ends at off.
    auto it = firstEndingAfter(off);
    const bool before = (it != runs_.begin() && std::prev(it)->end == off) || (it != runs_.end() && it->start < off);
    if (it != runs_.end() && it->start <= off) return {before, true, it->end};
    return {before, false, it == runs_.end() ? static_cast<std::uint32_t>(kChunkPages) : it->start};
}

template <typename F>
void PageSet::Chunk::forEachRun(F&& f) const {
    for (std::uint32_t at = next(0, false); at < kChunkPages;) {
        const std::uint32_t end = next(at, true);
        f(at, end);
        at = end < kChunkPages ? next(end, false) : end;
    }
}

std::uint32_t PageSet::Chunk::stretchStart(std::uint32_t end, bool member) const {
    if (end == 0) return 0;
    if (bits_) {
        std::size_t i = (end - 1) / 64;
        auto differing = [&](std::size_t w) { return member ? ~bits_[w] : bits_[w]; };
        std::uint64_t w = differing(i) & bitsBetween(0, (end - 1) % 64 + 1);
        while (w == 0) {
            if (i == 0) return 0;
            w = differing(--i);
        }
        return static_cast<std::uint32_t>(i * 64 + 64 - static_cast<unsigned>(std::countl_zero(w)));
    }
    const std::uint32_t last = end - 1;
    // The last run starting at or before `last`.
    auto it = firstStartingAfter(last);
    if (it == runs_.begin()) return member ? end : 0;
    const Run& r = *std::prev(it);
    const bool inside = r.end > last;
    if (inside != member) return end;
    return inside ? r.start : r.end;
}

void PageSet::Chunk::assign(std::uint32_t s, std::uint32_t e, bool member) {
    if (bits_) assignBits(s, e, member);
    else assignRuns(s, e, member);
}

void PageSet::Chunk::assignRuns(std::uint32_t s, std::uint32_t e, bool member) {
    // The runs the change reaches: those ending at or after s and starting at or
    // before e (touching ones merge with new members, and keep themselves otherwise).
    auto lo = std::lower_bound(runs_.begin(), runs_.end(), s, [](const Run& r, std::uint32_t x) { return r.end < x; });
    auto hi = std::upper_bound(lo, runs_.end(), e, [](std::uint32_t x, const Run& r) { return x < r.start; });
    Run replacement[2];
    std::size_t n = 0;
    if (member) {
        replacement[n++] = lo == hi ? Run{s, e} : Run{std::min(s, lo->start), std::max(e, std::prev(hi)->end)};
    } else if (lo != hi) {
        if (lo->start < s) replacement[n++] = {lo->start, s};
        if (std::prev(hi)->end > e) replacement[n++] = {e, std::prev(hi)->end};
    }
    const auto removed = static_cast<std::size_t>(hi - lo);
    if (n > removed && runs_.size() + (n - removed) > kMaxRuns) {
        toBitmap();
        assignBits(s, e, member);
        return;
    }
    const auto at = static_cast<std::size_t>(lo - runs_.begin());
    if (n > removed) {
        // Grow by hand so that the capacity never passes kMaxRuns (the bitmap's size).
        if (runs_.size() == runs_.capacity())
            runs_.reserve(std::min(kMaxRuns, std::max<std::size_t>(4, 2 * runs_.size())));
        runs_.insert(runs_.begin() + static_cast<std::ptrdiff_t>(at + removed), n - removed, Run{});
    } else if (n < removed) {
        runs_.erase(runs_.begin() + static_cast<std::ptrdiff_t>(at + n),
                    runs_.begin() + static_cast<std::ptrdiff_t>(at + removed));
    }
    std::copy(replacement, replacement + n, runs_.begin() + static_cast<std::ptrdiff_t>(at));
    // Memory follows the runs down as well as up.
    if (runs_.capacity() > 16 && runs_.size() * 4 < runs_.capacity()) runs_.shrink_to_fit();
}

std::size_t PageSet::Chunk::runStartsIn(std::size_t first_word, std::size_t last_word) const {
    std::size_t n = 0;
    for (std::size_t i = first_word; i <= last_word; ++i) {
        const std::uint64_t carry = i == 0 ? 0 : bits_[i - 1] >> 63U;
        n += static_cast<std::size_t>(std::popcount(bits_[i] & ~((bits_[i] << 1U) | carry)));
    }
    return n;
}

void PageSet::Chunk::assignBits(std::uint32_t s, std::uint32_t e, bool member) {
    const std::size_t ws = s / 64;
    const std::size_t we = (e - 1) / 64;
    // A run starts where a member follows a non-member: the words changed, and the one
    // after (its first bit's predecessor may change), are all it can move.
    const std::size_t counted_to = std::min(we + 1, kWords - 1);
    const std::size_t before = runStartsIn(ws, counted_to);
    fillBits(s, e, member);
    bitmap_runs_ = bitmap_runs_ - before + runStartsIn(ws, counted_to);
    if (bitmap_runs_ <= kMaxRuns / 2) toRuns();
}

void PageSet::Chunk::fillBits(std::uint32_t s, std::uint32_t e, bool member) {
    const std::size_t ws = s / 64;
    const std::size_t we = (e - 1) / 64;
    for (std::size_t i = ws; i <= we; ++i) {
        const unsigned lo = i == ws ? s % 64 : 0;
        const unsigned hi = i == we ? (e - 1) % 64 + 1 : 64;
        const std::uint64_t mask = bitsBetween(lo, hi);
        bits_[i] = member ? bits_[i] | mask : bits_[i] & ~mask;
    }
}

void PageSet::Chunk::toBitmap() {
    bits_ = std::make_unique<std::uint64_t[]>(kWords);  // zeroed
    for (const Run& r : runs_) fillBits(r.start, r.end, true);
    bitmap_runs_ = runs_.size();
    std::vector<Run>().swap(runs_);
}

void PageSet::Chunk::toRuns() {
    std::vector<Run> runs;
    runs.reserve(bitmap_runs_);
    forEachRun([&runs](std::uint32_t s, std::uint32_t e) { runs.push_back({s, e}); });
    bits_.reset();
    bitmap_runs_ = 0;
    runs_ = std::move(runs);
}

std::size_t PageSet::Chunk::heapBytes() const {
    return bits_ ? kWords * sizeof(std::uint64_t) : runs_.capacity() * sizeof(Run);
}

// ---- PageSet ------------------------------------------------------------------------

bool PageSet::contains(std::uint64_t page) const {
    const std::uint64_t chunk = page >> kChunkShift;
    if (chunk >= slots_.size()) return false;
    const Slot& slot = slots_[chunk];
    if (slot.fill != Fill::Some) return slot.fill == Fill::All;
    return slot.chunk.contains(static_cast<std::uint32_t>(page % kChunkPages));
}

std::uint64_t PageSet::runEnd(std::uint64_t page, std::uint64_t limit) const { return stretchAt(page, limit).end; }

PageSet::Stretch PageSet::stretchAt(std::uint64_t page, std::uint64_t limit) const {
    const std::uint64_t chunk = page >> kChunkShift;
    if (chunk >= slots_.size() || slots_[chunk].fill != Fill::Some) {
        const bool member = chunk < slots_.size() && slots_[chunk].fill == Fill::All;
        return {member, runEndFrom(page, limit, member)};
    }
    // A mixed chunk: one search gives the membership and where it changes.
    const std::uint64_t base = page - page % kChunkPages;
    const Chunk::Probe p = slots_[chunk].chunk.probe(static_cast<std::uint32_t>(page - base));
    return stretchFrom(base, p.member, p.end, limit);
}

PageSet::Edge PageSet::edgeAt(std::uint64_t page, std::uint64_t limit) const {
    const std::uint64_t chunk = page >> kChunkShift;
    // page - 1 in another chunk, or no search to share: two plain lookups.
    if (page % kChunkPages == 0 || chunk >= slots_.size() || slots_[chunk].fill != Fill::Some)
        return {page > 0 && contains(page - 1), stretchAt(page, limit)};
    const std::uint64_t base = page - page % kChunkPages;
    const Chunk::Probe p = slots_[chunk].chunk.probe(static_cast<std::uint32_t>(page - base));
    return {p.before, stretchFrom(base, p.member, p.end, limit)};
}

PageSet::Stretch PageSet::stretchFrom(std::uint64_t base, bool member, std::uint32_t end, std::uint64_t limit) const {
    if (end < kChunkPages) return {member, std::min(limit, base + end)};
    return {member, runEndFrom(base + kChunkPages, limit, member)};
}

std::uint64_t PageSet::runEndFrom(std::uint64_t at, std::uint64_t limit, bool member) const {
    while (at < limit) {
        const std::uint64_t chunk = at >> kChunkShift;
        if (chunk >= slots_.size()) return member ? at : limit;  // no members past the slots
        const Slot& slot = slots_[chunk];
        if (slot.fill == Fill::Some) {
            const std::uint32_t q = slot.chunk.next(static_cast<std::uint32_t>(at % kChunkPages), member);
            if (q < kChunkPages) return std::min(limit, (chunk << kChunkShift) + q);
        } else if ((slot.fill == Fill::All) != member) {
            return at;
        }
        at = (chunk + 1) << kChunkShift;
    }
    return limit;
}

std::uint64_t PageSet::runStart(std::uint64_t page, std::uint64_t floor) const {
    const bool member = contains(page);
    std::uint64_t end = page + 1;  // [result, end) has the membership of `page`
    while (end > floor) {
        const std::uint64_t chunk = (end - 1) >> kChunkShift;
        const std::uint64_t base = chunk << kChunkShift;
        if (chunk >= slots_.size()) {  // non-members down to the last slot
            if (member) return end;
            end = std::uint64_t{slots_.size()} << kChunkShift;
            continue;
        }
        const Slot& slot = slots_[chunk];
        if (slot.fill == Fill::Some) {
            const std::uint32_t q = slot.chunk.stretchStart(static_cast<std::uint32_t>(end - base), member);
            if (q > 0) return std::max(floor, base + q);
        } else if ((slot.fill == Fill::All) != member) {
            return end;
        }
        end = base;
    }
    return floor;
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> PageSet::members() const {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
    auto add = [&out](std::uint64_t s, std::uint64_t e) {
        if (!out.empty() && out.back().second == s) out.back().second = e;
        else out.emplace_back(s, e);
    };
    for (std::uint64_t chunk = 0; chunk < slots_.size(); ++chunk) {
        const Slot& slot = slots_[chunk];
        const std::uint64_t base = chunk << kChunkShift;
        if (slot.fill == Fill::All) add(base, base + kChunkPages);
        if (slot.fill == Fill::Some)
            slot.chunk.forEachRun([&](std::uint32_t s, std::uint32_t e) { add(base + s, base + e); });
    }
    return out;
}

std::size_t PageSet::heapBytes() const {
    std::size_t n = slots_.capacity() * sizeof(Slot);
    for (const Slot& slot : slots_) {
        if (slot.fill == Fill::Some) n += slot.chunk.heapBytes();
    }
    return n;
}

std::size_t PageSet::bitmapChunks() const {
    return static_cast<std::size_t>(std::count_if(
        slots_.begin(), slots_.end(), [](const Slot& s) { return s.fill == Fill::Some && s.chunk.isBitmap(); }));
}

void PageSet::assign(std::uint64_t first, std::uint64_t end, bool member) {
    // Slots exist up to the last chunk that has members.
    if (member && end > first) slots_.resize(std::max<std::size_t>(slots_.size(), ((end - 1) >> kChunkShift) + 1));
    end = std::min(end, std::uint64_t{slots_.size()} << kChunkShift);
    std::uint64_t at = first;
    if (at < end && at % kChunkPages != 0) {  // the head, in the first chunk
        const std::uint64_t base = at - at % kChunkPages;
        const std::uint64_t stop = std::min(end, base + kChunkPages);
        assignInChunk(at >> kChunkShift, static_cast<std::uint32_t>(at - base), static_cast<std::uint32_t>(stop - base),
                      member);
        at = stop;
    }
    for (; at + kChunkPages <= end; at += kChunkPages) {  // whole chunks
        Slot& slot = slots_[at >> kChunkShift];
        slot.fill = member ? Fill::All : Fill::None;
        slot.chunk = Chunk{};
    }
    if (at < end) assignInChunk(at >> kChunkShift, 0, static_cast<std::uint32_t>(end - at), member);  // the tail
    if (!member) {
        while (!slots_.empty() && slots_.back().fill == Fill::None) slots_.pop_back();
        if (slots_.empty() || slots_.capacity() > 2 * slots_.size() + 16) slots_.shrink_to_fit();
    }
}

void PageSet::assignInChunk(std::uint64_t chunk, std::uint32_t s, std::uint32_t e, bool member) {
    Slot& slot = slots_[chunk];
    if (slot.fill == (member ? Fill::All : Fill::None)) return;
    if (slot.fill != Fill::Some) {
        slot.chunk = slot.fill == Fill::All ? Chunk::full() : Chunk{};
        slot.fill = Fill::Some;
    }
    slot.chunk.assign(s, e, member);
    if (slot.chunk.noMembers() || slot.chunk.allMembers()) {
        slot.fill = slot.chunk.noMembers() ? Fill::None : Fill::All;
        slot.chunk = Chunk{};
    }
}

}  // namespace tio
