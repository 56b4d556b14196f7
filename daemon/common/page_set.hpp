#pragma once
// A set of page numbers whose memory never exceeds a bitmap's by more than 1% and,
// where membership is mostly uniform, is proportional to its runs: the roaring-bitmap
// idea (issue 13, tests/bench/page_state_bench.cpp).
//
// Pages are grouped in chunks of kChunkPages, one slot each, indexed by chunk number
// (so finding a page's chunk is one array access, not a tree walk: it is most of the
// cost of a small conversion). A slot says its chunk has no members, only members,
// or some: then the chunk holds a sorted vector of runs while that is no larger than
// a bitmap of the chunk, the bitmap itself beyond (and back to runs when the runs
// halve: the hysteresis keeps a chunk from flipping on every change). Invariants,
// after every call:
//   - a chunk held is mixed: it has members and non-members;
//   - its run vector is sorted, its runs non-empty, disjoint and not touching, and it
//     holds at most kMaxRuns runs (its capacity too): no more bytes than its bitmap;
//   - the last slot has members (slots past it would say nothing).
// Memory: 48 bytes a chunk up to the last member (96 KiB per TiB, 0.3% of the bitmap)
// plus 8 bytes a run in mixed chunks, at most a bitmap's 16 KiB each.
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace tio {

class PageSet {
public:
    static constexpr unsigned kChunkShift = 17;  // 512 MiB of 4 KiB pages, a 16 KiB bitmap
    static constexpr std::uint64_t kChunkPages = 1ULL << kChunkShift;

    // Makes every page of [first, end) a member (`member`) or not.
    void assign(std::uint64_t first, std::uint64_t end, bool member);
    [[nodiscard]] bool contains(std::uint64_t page) const;
    // The first page at or after `page` whose membership differs from that of `page`;
    // `limit` if none comes before it.
    [[nodiscard]] std::uint64_t runEnd(std::uint64_t page, std::uint64_t limit) const;
    // contains(page) and runEnd(page, limit) in one search.
    struct Stretch {
        bool member = false;
        std::uint64_t end = 0;
    };
    [[nodiscard]] Stretch stretchAt(std::uint64_t page, std::uint64_t limit) const;
    // stretchAt(page, limit), and whether page - 1 is a member (false for page 0): in a
    // mixed chunk the search that finds the one finds the other, so a caller that wants
    // a range's left neighbour too (the planner) searches once, not twice.
    struct Edge {
        bool before = false;
        Stretch stretch;
    };
    [[nodiscard]] Edge edgeAt(std::uint64_t page, std::uint64_t limit) const;
    // The first page of the stretch with the membership of `page` that holds it; no
    // lower than `floor`.
    [[nodiscard]] std::uint64_t runStart(std::uint64_t page, std::uint64_t floor) const;
    // The maximal runs of members, [first, end), in order. O(runs + chunks).
    [[nodiscard]] std::vector<std::pair<std::uint64_t, std::uint64_t>> members() const;
    [[nodiscard]] bool empty() const { return slots_.empty(); }
    // The heap bytes the set holds: its slots, chunks, run vectors (capacity) and bitmaps.
    [[nodiscard]] std::size_t heapBytes() const;
    // How many mixed chunks are bitmaps (for benchmarks and tests).
    [[nodiscard]] std::size_t bitmapChunks() const;
    bool operator==(const PageSet& o) const { return members() == o.members(); }

private:
    struct Run {
        std::uint32_t start = 0;  // offsets in the chunk, [start, end)
        std::uint32_t end = 0;
    };
    static constexpr std::size_t kWords = kChunkPages / 64;
    static constexpr std::size_t kMaxRuns = kWords * sizeof(std::uint64_t) / sizeof(Run);

    // The pages of one mixed chunk.
    class Chunk {
    public:
        [[nodiscard]] bool contains(std::uint32_t off) const;
        // The first offset at or after `off` whose membership is not `member`; kChunkPages if none.
        [[nodiscard]] std::uint32_t next(std::uint32_t off, bool member) const;
        // contains(off - 1) (when off > 0), contains(off), and next(off, contains(off)):
        // what one search tells.
        struct Probe {
            bool before = false;
            bool member = false;
            std::uint32_t end = 0;
        };
        [[nodiscard]] Probe probe(std::uint32_t off) const;
        // The smallest q <= end such that every page of [q, end) has membership `member`.
        [[nodiscard]] std::uint32_t stretchStart(std::uint32_t end, bool member) const;
        void assign(std::uint32_t s, std::uint32_t e, bool member);
        [[nodiscard]] bool noMembers() const { return runCount() == 0; }
        [[nodiscard]] bool allMembers() const;
        [[nodiscard]] std::size_t runCount() const { return bits_ ? bitmap_runs_ : runs_.size(); }
        [[nodiscard]] std::size_t heapBytes() const;
        [[nodiscard]] bool isBitmap() const { return bits_ != nullptr; }
        // A chunk of members only: what an all-members chunk becomes when it is cut.
        static Chunk full();
        // Calls f(start, end) for each run of members, in order.
        template <typename F>
        void forEachRun(F&& f) const;

    private:
        // In the run vector, by a branch-free search: the first run starting after x,
        // and the first ending after x.
        [[nodiscard]] std::vector<Run>::const_iterator firstStartingAfter(std::uint32_t x) const;
        [[nodiscard]] std::vector<Run>::const_iterator firstEndingAfter(std::uint32_t x) const;
        // In the bitmap: the first offset at or after `off` whose bit is not `member`.
        [[nodiscard]] std::uint32_t scanBits(std::uint32_t off, bool member) const;
        // Sets (`member`) or clears the bits of [s, e).
        void fillBits(std::uint32_t s, std::uint32_t e, bool member);
        void assignRuns(std::uint32_t s, std::uint32_t e, bool member);
        void assignBits(std::uint32_t s, std::uint32_t e, bool member);
        [[nodiscard]] std::size_t runStartsIn(std::size_t first_word, std::size_t last_word) const;
        void toBitmap();
        void toRuns();

        std::vector<Run> runs_;                  // while bits_ is null
        std::unique_ptr<std::uint64_t[]> bits_;  // kWords words, bit = member
        std::size_t bitmap_runs_ = 0;            // runs of members in bits_
    };

    enum class Fill : std::uint8_t { None, All, Some };
    // The chunk lies in its slot, not behind a pointer: a lookup's first dependent
    // load is then the run vector's, one cache miss fewer (issue 13's planning cost).
    struct Slot {
        Chunk chunk;  // meaningful exactly when fill is Some, empty (holding nothing) otherwise
        Fill fill = Fill::None;
    };

    // The stretch that a probe of a mixed chunk starting at page `base` found: the
    // membership `member` up to offset `end` (kChunkPages: on into the next chunks).
    [[nodiscard]] Stretch stretchFrom(std::uint64_t base, bool member, std::uint32_t end, std::uint64_t limit) const;
    // runEnd from `at`, where the membership is `member`.
    [[nodiscard]] std::uint64_t runEndFrom(std::uint64_t at, std::uint64_t limit, bool member) const;
    void assignInChunk(std::uint64_t chunk, std::uint32_t s, std::uint32_t e, bool member);

    std::vector<Slot> slots_;  // by chunk number
};

}  // namespace tio
