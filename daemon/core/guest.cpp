// Guest: the aggregate, its object table, teardown and the read model. The VM is in
// vm.cpp, memory and conversions in memory.cpp, devices, vIOMMUs, vDEVICEs and TDIs
// in devices.cpp, restart survival in recovery.cpp.
#include "core/guest.hpp"

namespace tio::core {

std::optional<kernel::VmType> parseVmType(std::string_view s) {
    if (s == "default") return kernel::VmType::Default;
    if (s == "sw-protected") return kernel::VmType::SwProtected;
    if (s == "snp") return kernel::VmType::Snp;
    if (s == "tdx") return kernel::VmType::Tdx;
    return std::nullopt;
}

std::string_view toString(kernel::VmType t) {
    switch (t) {
        case kernel::VmType::Default: return "default";
        case kernel::VmType::SwProtected: return "sw-protected";
        case kernel::VmType::Snp: return "snp";
        case kernel::VmType::Tdx: return "tdx";
    }
    return "default";
}

Guest::Guest(GuestConfig config, kernel::Syscalls& sys, Policy policy)
    : config_(std::move(config)), sys_(sys), guard_(config_.name, std::move(policy)) {}

void Guest::changed() {
    for (const auto& listener : listeners_) listener();
}

std::vector<PolicyFinding> Guest::setPolicy(Policy policy) {
    std::vector<std::pair<ObjectId, Bdf>> devices;
    devices.reserve(devices_.size());
    for (const auto& [id, d] : devices_) devices.emplace_back(id, d.bdf);
    return guard_.replacePolicy(std::move(policy), devices, memory_.size());
}

Guest::~Guest() {
    listeners_.clear();  // they may be gone already: the guest outlives its doors
    (void)teardown();
}

Result<> Guest::requireVm(std::string_view step) const {
    if (state_ == GuestState::TearingDown) return fail(Code::ShuttingDown, "the guest is tearing down");
    if (!vm_) return fail(Code::InvalidState, std::string(step) + " needs a VM (AttachVm first)");
    return {};
}

// Who holds whom (iommufd's refcounts): a device holds the page table it is attached
// to; a vIOMMU holds the page table it
// sits on; a vDEVICE holds its vIOMMU and its device; the page table and memory hold
// the IOAS.
std::vector<ObjectKey> Guest::holdsOf(const Device& d) const {
    std::vector<ObjectKey> holds;
    if (d.state == DeviceState::Attached) holds.push_back(kHwptKey);
    return holds;
}
std::vector<ObjectKey> Guest::holdsOf(const VIommu&) { return {kHwptKey}; }
std::vector<ObjectKey> Guest::holdsOf(const Device& d, const VDevice& v) {
    return {{ObjectKind::VIommu, v.viommu}, {ObjectKind::Device, d.id}};
}
std::vector<ObjectKey> Guest::holdsOf(const MemoryRegion&) { return {kIoasKey}; }

void Guest::releaseHwptIfUnused() {
    // A manual HWPT, not an autodomain: ours to destroy once nothing holds it; if the
    // kernel refuses, teardown tries again.
    if (!objects_.contains(kHwptKey) || objects_.pins(kHwptKey) != 0) return;
    if (vm_->iommufd.destroy(hwptId())) (void)objects_.erase(kHwptKey);
}

Result<> Guest::destroyObject(ObjectKey key, std::uint32_t kernel_id) {
    VmContext& vm = *vm_;
    switch (key.kind) {
        case ObjectKind::VDevice: {
            Device& d = devices_.at(key.id);
            Result<> r;
            // STOP before the vDEVICE goes (its destruction unbinds anyway): a bound
            // TDI is never left behind, quarantined or not.
            if (d.tdiNeedsUnbind() && hasTsmContext(d)) r = stopTdi(d);
            d.tdi = TdiState::Unlocked;
            Result<> destroyed = vm.iommufd.destroy(kernel_id);
            d.vdevice.reset();
            return r ? destroyed : r;
        }
        case ObjectKind::VIommu: viommus_.erase(key.id); return vm.iommufd.destroy(kernel_id);
        case ObjectKind::Device: {
            Device& d = devices_.at(key.id);
            Result<> r;
            if (d.state == DeviceState::Attached) r = d.vfio.detach();
            devices_.erase(key.id);  // closes the cdev (unbinds it from iommufd) and drops the claim
            return r;
        }
        case ObjectKind::Memory: {
            MemoryRegion& m = memory_.at(key.id);
            dropMemoryKernelState(m.gpa, m.size);
            memory_by_gpa_.erase(m.gpa);
            memory_.erase(key.id);
            return {};
        }
        case ObjectKind::Hwpt:
        case ObjectKind::Ioas: return vm.iommufd.destroy(kernel_id);
    }
    return {};
}

std::vector<Error> Guest::teardown() {
    if (state_ == GuestState::Empty && !vm_) return {};
    (void)transition(kGuestTransitions, state_, GuestState::TearingDown);
    // Leaf-first, the reverse of bring-up (kernel-uapi.md 1.5 and section 7): the
    // table's drain destroys what nothing holds until nothing is left.
    std::vector<Error> errors =
        objects_.drain([this](ObjectKey key, std::uint32_t kernel_id) { return destroyObject(key, kernel_id); });
    vm_.reset();  // iommufd, VM: members close in reverse order, the VM last
    (void)transition(kGuestTransitions, state_, GuestState::Empty);
    changed();
    return errors;
}

std::optional<ObjectId> Guest::findDevice(const Bdf& bdf) const {
    for (const auto& [id, d] : devices_)
        if (d.bdf == bdf) return id;
    return std::nullopt;
}

std::uint64_t Guest::generation() const {
    // The table's generation covers every object made or destroyed; what a snapshot
    // also records of the objects (states) is folded in, so a change of any of it
    // changes the number.
    std::uint64_t g = objects_.generation() * 1000003U ^ static_cast<std::uint64_t>(state_) ^ (next_id_ << 8U) ^
                      (closures_ << 40U) ^ (uncertain_.size() << 56U);
    for (const auto& [id, d] : devices_) {
        g = g * 31U + (id << 8U) + (static_cast<std::uint64_t>(d.tdi) << 4U) +
            (static_cast<std::uint64_t>(d.state) << 2U) + (d.tsm_connected ? 1U : 0U);
    }
    return g;
}

}  // namespace tio::core
