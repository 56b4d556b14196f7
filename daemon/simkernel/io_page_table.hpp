#pragma once
// One simulated IOMMU page table (per HWPT) with 4 KiB, 2 MiB and 1 GiB leaf entries.
//
// Stored run-length compressed: a Segment is a stretch of IOVA whose leaves are the
// greedy decomposition the kernel's iommu_map() makes (at each address the largest
// page size that is aligned in IOVA and in the file and fits, capped by the segment's
// limit). Leaves never cross a segment end; a segment ends at every area end and
// every page-size-limit change. So the table costs memory per segment, not per page,
// yet every leaf is well defined: leafAt() is what the hardware walk finds, and
// counts() how many entries of each size the table holds.
#include <array>
#include <cstdint>
#include <map>
#include <optional>

namespace tio::sim {

inline constexpr unsigned kShift4K = 12;
inline constexpr unsigned kShift2M = 21;
inline constexpr unsigned kShift1G = 30;

struct Segment {
    std::uint64_t end = 0;
    std::uintptr_t file = 0;       // identity of the mapped file
    std::uint64_t file_delta = 0;  // file offset - iova (mod 2^64): the translation
    bool writeable = false;
    unsigned max_shift = kShift1G;  // the page-size limit of this stretch
    bool operator==(const Segment&) const = default;
};

struct Leaf {
    std::uint64_t iova = 0;  // base
    unsigned shift = kShift4K;
    std::uintptr_t file = 0;
    std::uint64_t file_offset = 0;  // of the base
    bool writeable = false;
    [[nodiscard]] std::uint64_t size() const { return 1ULL << shift; }
};

// Entries per size: [0] 4 KiB, [1] 2 MiB, [2] 1 GiB.
struct LeafCounts {
    std::array<std::uint64_t, 3> n{};
    [[nodiscard]] std::uint64_t total() const { return n[0] + n[1] + n[2]; }
    LeafCounts& operator+=(const LeafCounts& o) {
        for (std::size_t i = 0; i < 3; ++i) n[i] += o.n[i];
        return *this;
    }
    bool operator==(const LeafCounts&) const = default;
};

// What replacing part of the table did, in hardware terms.
struct TableChange {
    LeafCounts removed;
    LeafCounts added;
    std::uint64_t pages_unmapped = 0;    // 4 KiB pages no longer translated
    std::uint64_t pages_mapped = 0;      // 4 KiB pages newly translated
    std::uint64_t splits = 0;            // huge entries replaced by a table of smaller ones
    std::uint64_t merges = 0;            // tables replaced by one huge entry
    std::uint64_t retargeted_pages = 0;  // pages that stayed mapped but changed translation (never allowed)
};

// The largest leaf shift a stretch with this translation and limit can use.
[[nodiscard]] unsigned usableShift(std::uint64_t file_delta, unsigned limit_shift);
// Leaves the greedy decomposition of [s, e) makes with shifts up to max_shift.
[[nodiscard]] LeafCounts decompose(std::uint64_t s, std::uint64_t e, unsigned max_shift);
// The leaf of that decomposition containing v (s <= v < e): its base and shift.
[[nodiscard]] std::pair<std::uint64_t, unsigned> leafOf(std::uint64_t s, std::uint64_t e, unsigned max_shift,
                                                        std::uint64_t v);

class IoPageTable {
public:
    using Segments = std::map<std::uint64_t, Segment>;  // start -> segment

    // Replaces the table's contents in [s, e) by `fresh` (segments inside [s, e)).
    // [s, e) must not cut an existing segment. If `restructure`, the set of mapped
    // pages must not change and the difference is counted as splits and merges (a
    // hitless replace); otherwise as entries mapped and unmapped.
    TableChange replace(std::uint64_t s, std::uint64_t e, const Segments& fresh, bool restructure);

    [[nodiscard]] std::optional<Leaf> leafAt(std::uint64_t iova) const;
    [[nodiscard]] const Segments& segments() const { return segments_; }
    // The smallest [s', e') containing [s, e) that cuts no segment.
    [[nodiscard]] std::pair<std::uint64_t, std::uint64_t> widen(std::uint64_t s, std::uint64_t e) const;
    [[nodiscard]] LeafCounts counts() const { return counts_; }

private:
    Segments segments_;
    LeafCounts counts_;
};

}  // namespace tio::sim
