#pragma once
// A map from disjoint half-open ranges [start, end) of u64 to values, kept coalesced:
// two touching runs never hold equal values. Memory and time depend on the number of
// runs (fragments), never on the length they cover: a 1 TiB guest with one private
// page costs three entries. Each run is a map node, though, so a pattern of one run
// per page costs far more than a bitmap: the daemon keeps its page states in page
// sets (common/page_set.hpp); this serves the simulator and the tests' oracles.
#include <cstdint>
#include <iterator>
#include <map>
#include <optional>
#include <vector>

namespace tio {

// MapT is any ordered map with std::map's interface (absl::btree_map, for the
// comparison in tests/bench/page_state_bench.cpp): no iterator is used after an
// insert or erase that may invalidate it.
template <typename V, template <typename, typename, typename...> class MapT = std::map>
class RangeMap {
public:
    struct Run {
        std::uint64_t start = 0;
        std::uint64_t end = 0;
        V value{};
        bool operator==(const Run&) const = default;
    };

    // Makes [s, e) hold `v` (s < e), coalescing with equal neighbours.
    void assign(std::uint64_t s, std::uint64_t e, const V& v) {
        carve(s, e);
        auto it = runs_.emplace(s, Entry{e, v}).first;
        coalesce(it);
    }

    // Forgets [s, e).
    void erase(std::uint64_t s, std::uint64_t e) { carve(s, e); }

    // The run containing x, unclipped.
    [[nodiscard]] std::optional<Run> find(std::uint64_t x) const {
        auto it = runs_.upper_bound(x);
        if (it == runs_.begin()) return std::nullopt;
        --it;
        if (x >= it->second.end) return std::nullopt;
        return Run{it->first, it->second.end, it->second.value};
    }

    // Calls f(start, end, value) for every run overlapping [s, e), clipped to it, in order.
    template <typename F>
    void forEach(std::uint64_t s, std::uint64_t e, F&& f) const {
        auto it = runs_.upper_bound(s);
        if (it != runs_.begin() && std::prev(it)->second.end > s) --it;
        for (; it != runs_.end() && it->first < e; ++it) {
            const std::uint64_t rs = it->first < s ? s : it->first;
            const std::uint64_t re = it->second.end > e ? e : it->second.end;
            f(rs, re, it->second.value);
        }
    }

    // The runs overlapping [s, e), clipped.
    [[nodiscard]] std::vector<Run> runs(std::uint64_t s, std::uint64_t e) const {
        std::vector<Run> out;
        forEach(s, e, [&](std::uint64_t rs, std::uint64_t re, const V& v) { out.push_back(Run{rs, re, v}); });
        return out;
    }

    // True when every byte of [s, e) is covered by a run with value `v`.
    [[nodiscard]] bool covers(std::uint64_t s, std::uint64_t e, const V& v) const {
        std::uint64_t at = s;
        forEach(s, e, [&](std::uint64_t rs, std::uint64_t re, const V& rv) {
            if (rs == at && rv == v) at = re;
        });
        return at >= e;
    }

    // True when some byte of [s, e) is in a run.
    [[nodiscard]] bool intersects(std::uint64_t s, std::uint64_t e) const {
        bool any = false;
        forEach(s, e, [&](std::uint64_t, std::uint64_t, const V&) { any = true; });
        return any;
    }

    // Where the gap or run containing x begins and ends: the piece boundaries around x
    // when runs and the gaps between them alternate. O(log n).
    [[nodiscard]] std::uint64_t pieceStart(std::uint64_t x) const {
        auto it = runs_.upper_bound(x);
        if (it == runs_.begin()) return 0;
        --it;
        return x < it->second.end ? it->first : it->second.end;
    }
    [[nodiscard]] std::uint64_t pieceEnd(std::uint64_t x) const {
        auto it = runs_.upper_bound(x);
        if (it != runs_.begin() && x < std::prev(it)->second.end) return std::prev(it)->second.end;
        return it == runs_.end() ? UINT64_MAX : it->first;
    }

    [[nodiscard]] std::size_t fragments() const { return runs_.size(); }
    [[nodiscard]] bool empty() const { return runs_.empty(); }
    void clear() { runs_.clear(); }
    [[nodiscard]] std::vector<Run> all() const {
        std::vector<Run> out;
        out.reserve(runs_.size());
        for (const auto& [s, en] : runs_) out.push_back(Run{s, en.end, en.value});
        return out;
    }
    bool operator==(const RangeMap& o) const { return runs_ == o.runs_; }

private:
    struct Entry {
        std::uint64_t end = 0;
        V value{};
        bool operator==(const Entry&) const = default;
    };
    using Map = MapT<std::uint64_t, Entry>;

    // Removes [s, e) from every run, keeping the parts outside it.
    void carve(std::uint64_t s, std::uint64_t e) {
        auto it = runs_.upper_bound(s);
        if (it != runs_.begin() && std::prev(it)->second.end > s) {
            --it;
            if (it->first < s) {
                Entry tail = it->second;
                it->second.end = s;
                if (tail.end > e) {
                    runs_.emplace(e, tail);
                    return;
                }
                ++it;
            }
        }
        while (it != runs_.end() && it->first < e) {
            if (it->second.end > e) {
                Entry tail = it->second;
                runs_.erase(it);
                runs_.emplace(e, tail);
                return;
            }
            it = runs_.erase(it);
        }
    }

    void coalesce(typename Map::iterator it) {
        if (it != runs_.begin()) {
            auto prev = std::prev(it);
            if (prev->second.end == it->first && prev->second.value == it->second.value) {
                const std::uint64_t key = prev->first;
                prev->second.end = it->second.end;
                runs_.erase(it);
                it = runs_.find(key);
            }
        }
        auto next = std::next(it);
        if (next != runs_.end() && it->second.end == next->first && next->second.value == it->second.value) {
            it->second.end = next->second.end;
            runs_.erase(next);
        }
    }

    Map runs_;
};

}  // namespace tio
