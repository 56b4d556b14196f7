#include "core/object_table.hpp"

#include <algorithm>

namespace tio::core {

std::string_view toString(ObjectKind kind) {
    switch (kind) {
        case ObjectKind::Ioas: return "the IOAS";
        case ObjectKind::Hwpt: return "the nest-parent page table";
        case ObjectKind::Memory: return "the memory region";
        case ObjectKind::Device: return "the device";
        case ObjectKind::VIommu: return "the vIOMMU";
        case ObjectKind::VDevice: return "the vDEVICE";
    }
    return "the object";
}

namespace {

// The call that removes an object of `kind`: what a Busy refusal asks for first.
std::string_view destroyStep(ObjectKind kind) {
    switch (kind) {
        case ObjectKind::VDevice: return "DestroyVDevice";
        case ObjectKind::VIommu: return "VIommu.Destroy";
        case ObjectKind::Device: return "RemoveDevice";
        case ObjectKind::Memory: return "Memory.Remove";
        case ObjectKind::Ioas:
        case ObjectKind::Hwpt: return "Teardown";
    }
    return "Teardown";
}

}  // namespace

Result<> ObjectTable::requireHeld(ObjectKey key, const std::vector<ObjectKey>& holds) const {
    for (const ObjectKey& held : holds) {
        if (!objects_.contains(held)) {
            return fail(Code::Internal, std::string(toString(key.kind)) + " holds " + std::string(toString(held.kind)) +
                                            ", which is not in the table");
        }
    }
    return {};
}

Result<> ObjectTable::add(ObjectKey key, std::uint32_t kernel_id, std::vector<ObjectKey> holds) {
    if (objects_.contains(key)) return fail(Code::Internal, std::string(toString(key.kind)) + " is in the table twice");
    if (auto r = requireHeld(key, holds); !r) return r;
    for (const ObjectKey& held : holds) ++objects_.at(held).pins;
    objects_.emplace(key, Object{.kernel_id = kernel_id, .holds = std::move(holds)});
    ++generation_;
    return {};
}

Result<> ObjectTable::replace(ObjectKey key, std::uint32_t kernel_id, std::vector<ObjectKey> holds) {
    auto it = objects_.find(key);
    if (it == objects_.end()) return fail(Code::Internal, std::string(toString(key.kind)) + " is not in the table");
    if (auto r = requireHeld(key, holds); !r) return r;
    for (const ObjectKey& held : holds) ++objects_.at(held).pins;
    release(it->second);
    it->second.kernel_id = kernel_id;
    it->second.holds = std::move(holds);
    ++generation_;
    return {};
}

Result<> ObjectTable::erase(ObjectKey key) {
    auto it = objects_.find(key);
    if (it == objects_.end()) return fail(Code::NotFound, "no such object in this guest");
    if (it->second.pins != 0) {
        const ObjectKey holder = *holderOf(key);
        return fail(Code::Busy, std::string(toString(key.kind)) + " is still used by " +
                                    std::string(toString(holder.kind)) + " (" + std::string(destroyStep(holder.kind)) +
                                    " first)");
    }
    release(it->second);
    objects_.erase(it);
    ++generation_;
    return {};
}

std::uint32_t ObjectTable::pins(ObjectKey key) const {
    auto it = objects_.find(key);
    return it == objects_.end() ? 0 : it->second.pins;
}

std::uint32_t ObjectTable::kernelId(ObjectKey key) const {
    auto it = objects_.find(key);
    return it == objects_.end() ? 0 : it->second.kernel_id;
}

const std::vector<ObjectKey>& ObjectTable::holds(ObjectKey key) const {
    static const std::vector<ObjectKey> kNone;
    auto it = objects_.find(key);
    return it == objects_.end() ? kNone : it->second.holds;
}

std::vector<ObjectKey> ObjectTable::ofKind(ObjectKind kind) const {
    std::vector<ObjectKey> out;
    for (auto it = objects_.lower_bound({kind, 0}); it != objects_.end() && it->first.kind == kind; ++it) {
        out.push_back(it->first);
    }
    return out;
}

std::set<std::uint32_t> ObjectTable::kernelIds() const {
    std::set<std::uint32_t> out;
    for (const auto& [key, o] : objects_)
        if (o.kernel_id != 0) out.insert(o.kernel_id);
    return out;
}

std::optional<ObjectKey> ObjectTable::holderOf(ObjectKey key) const {
    for (const auto& [holder, o] : objects_)
        if (std::find(o.holds.begin(), o.holds.end(), key) != o.holds.end()) return holder;
    return std::nullopt;
}

void ObjectTable::release(const Object& o) {
    for (const ObjectKey& held : o.holds) --objects_.at(held).pins;
}

}  // namespace tio::core
