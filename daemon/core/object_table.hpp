#pragma once
// The guest's object table, shaped on iommufd's (drivers/iommu/iommufd/main.c): one
// table per guest, every kernel object the guest holds in it under (kind, id), with
// the kernel's own id for it and the objects it holds. A hold is a pin on the held
// object, taken when the holder is added and released when the holder is erased:
// one pair per relationship, in one place. Erasing a pinned object is Busy, naming
// what must go first; drain() destroys unpinned objects until the table is empty,
// which is teardown and restore's scrub, whatever order things were made in.
//
// Invariants: pins(x) == the number of objects whose holds name x; an object holds
// only objects that were in the table when it was added (so there are no cycles).
// The table keeps relations only; the RAII handles live in the typed records
// (Device, VIommu, MemoryRegion, VmContext) under the same key.
#include <algorithm>
#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"

namespace tio::core {

using ObjectId = std::uint64_t;  // monotonic per guest, never reused (D-Bus path element)

// Leaves last: drain() destroys the unpinned objects of one pass in this order.
enum class ObjectKind : std::uint8_t { Ioas, Hwpt, Memory, Device, VIommu, VDevice };

[[nodiscard]] std::string_view toString(ObjectKind kind);

// The guest-wide singletons (the IOAS, the nest-parent page table) have id 0; a vDEVICE has its device's id (one per
// device).
struct ObjectKey {
    ObjectKind kind = ObjectKind::Ioas;
    ObjectId id = 0;
    friend auto operator<=>(const ObjectKey&, const ObjectKey&) = default;
};

inline constexpr ObjectKey kIoasKey{ObjectKind::Ioas, 0};
inline constexpr ObjectKey kHwptKey{ObjectKind::Hwpt, 0};

class ObjectTable {
public:
    // Adds `key` holding `holds` (each pinned). Internal (a bug in the caller) if the
    // key exists or a held object does not.
    [[nodiscard]] Result<> add(ObjectKey key, std::uint32_t kernel_id, std::vector<ObjectKey> holds = {});
    // `key` became another kernel object holding other objects (a device bound to the
    // iommufd and attached): its old holds are released, the new ones pinned; what
    // holds `key` is unchanged. Internal if `key` or a held object is not there.
    [[nodiscard]] Result<> replace(ObjectKey key, std::uint32_t kernel_id, std::vector<ObjectKey> holds);
    // Removes `key` and releases its pins; Busy while anything holds it, naming the
    // step that must come first; NotFound if it is not there.
    [[nodiscard]] Result<> erase(ObjectKey key);
    // Destroys every object, unpinned ones first: `destroy(key, kernel_id)` undoes the
    // kernel side and returns whether it could; the object leaves the table either way
    // (teardown always makes progress: closing the fds makes the kernel converge).
    // Returns what failed, in order.
    template <typename Destroy>
    std::vector<Error> drain(Destroy&& destroy);

    [[nodiscard]] bool contains(ObjectKey key) const { return objects_.contains(key); }
    [[nodiscard]] std::uint32_t pins(ObjectKey key) const;
    [[nodiscard]] std::uint32_t kernelId(ObjectKey key) const;
    [[nodiscard]] const std::vector<ObjectKey>& holds(ObjectKey key) const;
    // The objects of one kind, in id order.
    [[nodiscard]] std::vector<ObjectKey> ofKind(ObjectKind kind) const;
    // Every kernel id the table accounts for (0, "no kernel object", excluded).
    [[nodiscard]] std::set<std::uint32_t> kernelIds() const;
    [[nodiscard]] bool empty() const { return objects_.empty(); }
    [[nodiscard]] std::size_t size() const { return objects_.size(); }
    // Bumped by every add and erase: what the object structure looked like when a
    // snapshot was last written is one number.
    [[nodiscard]] std::uint64_t generation() const { return generation_; }

private:
    struct Object {
        std::uint32_t kernel_id = 0;
        std::vector<ObjectKey> holds;
        std::uint32_t pins = 0;
    };
    [[nodiscard]] std::optional<ObjectKey> holderOf(ObjectKey key) const;
    // Internal unless every object of `holds` is in the table.
    [[nodiscard]] Result<> requireHeld(ObjectKey key, const std::vector<ObjectKey>& holds) const;
    void release(const Object& o);

    std::map<ObjectKey, Object> objects_;
    std::uint64_t generation_ = 0;
};

template <typename Destroy>
std::vector<Error> ObjectTable::drain(Destroy&& destroy) {
    std::vector<Error> errors;
    while (!objects_.empty()) {
        // One pass over what nothing holds, in kind order; every pass empties at least
        // the leaves (there are no cycles), so the loop ends.
        std::vector<ObjectKey> unpinned;
        for (const auto& [key, o] : objects_)
            if (o.pins == 0) unpinned.push_back(key);
        std::stable_sort(unpinned.begin(), unpinned.end(),
                         [](const ObjectKey& a, const ObjectKey& b) { return a.kind > b.kind; });
        for (const ObjectKey& key : unpinned) {
            if (Result<> r = destroy(key, objects_.at(key).kernel_id); !r) errors.push_back(r.error());
            auto it = objects_.find(key);
            release(it->second);
            objects_.erase(it);
            ++generation_;
        }
    }
    return errors;
}

}  // namespace tio::core
