#pragma once
// One guest's model and every decision about it (architecture.md section 5). Plain
// C++: the kernel is reached only through kernel/ wrappers on the Syscalls given at
// construction. Every public mutator either succeeds or changes nothing (kernel
// steps roll back in reverse); teardown() always makes progress.
// Not thread-safe: one event loop owns a Guest.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/platform.hpp"
#include "core/caller.hpp"
#include "core/guard.hpp"
#include "core/guest_image.hpp"
#include "core/memory_intent.hpp"
#include "core/memory_planner.hpp"
#include "core/object_table.hpp"
#include "core/objects.hpp"
#include "core/rollback.hpp"
#include "core/tdi.hpp"
#include "host/vm_claim.hpp"
#include "kernel/features.hpp"
#include "kernel/iommufd.hpp"
#include "kernel/kvm.hpp"
#include "kernel/syscalls.hpp"

namespace tio::core {

struct GuestConfig {
    std::string name;
    Platform platform = Platform::Tdx;
    std::string claim_dir;  // host-wide device locks (/run/tio-manager/devices)
};

enum class GuestRequestScope : std::uint8_t { Info, StateChange };

// A GPA range whose IOMMU mapping PunchHole took away (MemoryRevoked).
struct RevokedRange {
    std::uint64_t gpa = 0;
    std::uint64_t size = 0;
    bool operator==(const RevokedRange&) const = default;
};

// At most this much kernel work (calls planned) in one ConvertMemory(Ranges) or
// PunchHole call: the daemon serves one call at a time, so one call may not hold its
// other clients (the watchdog, property reads) for long. Over it the call is refused
// (LimitExceeded) and rolled back, having done at most this much and its undo.
inline constexpr std::size_t kMaxKernelCallsPerCall = 16384;
// At most this many ranges in one ConvertMemoryRanges call.
inline constexpr std::size_t kMaxConversionsPerCall = 1U << 16U;

// How applyChange treats the kernel: normally (each step with its undo), or not at
// all (replaying a journal onto a snapshot).
enum class ApplyMode : std::uint8_t { Normal, ModelOnly };

// What restore() did beyond adopting what the snapshot names.
struct RestoreReport {
    std::vector<std::string> notes;  // one line per thing dropped, finished or undone
};

// The VMM's VM (held, never given an ioctl) and the iommufd context. The IOAS and
// the nest-parent page table are objects of the table (kIoasKey, kHwptKey): their
// kernel ids are there, not here.
struct VmContext {
    kernel::KvmVm vm;
    kernel::VmType type;
    MemoryModel model;  // as the kernel offers it, probed with the VM
    kernel::Iommufd iommufd;
    kernel::IommuFeatures features;  // probed once, when the iommufd is opened
    // Whether the IOMMU maps guest_memfd by file (IOMMU_IOAS_MAP_FILE, an RFC):
    // probed with the first guest_memfd, on a scratch IOAS no device walks.
    std::optional<bool> gmem_map_file;
    host::VmClaim claim;  // host-wide: no other guest's daemon holds this VM
};

// The separate model's shared backing of a region: a memfd range (AddMemory options).
struct SharedBacking {
    UniqueFd fd;
    std::uint64_t offset = 0;
};

// The command layer (cloud-hypervisor's RequestHandler, machined's machine_*): every
// door decodes its wire format, calls these methods with the caller its authorizer
// let in, and encodes the answer. Every decision is made here, the policy's by the
// guard. After every change the model tells its listeners (the D-Bus publisher and
// the persister subscribe): the model saves itself.
class Guest {
public:
    Guest(GuestConfig config, kernel::Syscalls& sys, Policy policy);
    Guest(const Guest&) = delete;
    Guest& operator=(const Guest&) = delete;
    ~Guest();

    using Who = const AuthorizedCaller&;

    // --- VM ---
    // Deprecated (contract version 2): a VM answers only the process that created it,
    // so creating one here would give the VMM a VM it cannot run. NotSupported.
    [[nodiscard]] Result<UniqueFd> createVm(Who who);
    // Deprecated likewise: creating a guest_memfd is a VM ioctl. NotSupported.
    [[nodiscard]] Result<UniqueFd> createGuestMemory(Who who);
    // Holds the VM the VMM created: checked by the kernel's name for the file, never
    // by an ioctl. `type` must fit the platform and be offered by /dev/kvm. Opens the
    // guest's iommufd and IOAS and learns the kernel's memory model.
    [[nodiscard]] Result<> attachVm(Who who, UniqueFd vm_fd, kernel::VmType type);

    // --- memory ---
    // Registers [offset, offset+size) of `gmem` (a guest_memfd the VMM bound at `gpa`
    // with its memslot) and maps it for DMA as the platform and the memory model
    // allow. `shared`: the separate model's shared backing of the same range.
    [[nodiscard]] Result<ObjectId> addMemory(Who who, std::uint64_t gpa, std::uint64_t size, UniqueFd gmem,
                                             std::uint64_t offset, MemoryState initial,
                                             std::optional<SharedBacking> shared);
    [[nodiscard]] Result<> removeMemory(Who who, ObjectId id);
    // Converts every range (each inside guest memory) in order; all of them or none.
    [[nodiscard]] Result<> convertMemory(Who who, std::span<const MemoryConversion> ranges);
    // Revokes the IOMMU mappings over [gpa, gpa+size) (whole areas; with the proposed
    // reshape ioctl the areas are first cut at the range's ends, so nothing outside it
    // is revoked), then punches the hole. Returns what was revoked, for MemoryRevoked.
    [[nodiscard]] Result<std::vector<RevokedRange>> punchHole(Who who, std::uint64_t gpa, std::uint64_t size);

    // --- devices, vIOMMUs, vDEVICEs, TDIs ---
    // Claims the function and opens its cdev (opened); the VMM then adds the cdev to
    // its KVM-VFIO device and calls attachDevice (bind to iommufd, attach).
    // `vf_token`: the token a VF shows at bind when its PF's driver set one.
    [[nodiscard]] Result<ObjectId> addDevice(Who who, const Bdf& bdf,
                                             std::optional<kernel::VfToken> vf_token = std::nullopt);
    [[nodiscard]] Result<> attachDevice(Who who, ObjectId id);
    [[nodiscard]] Result<> removeDevice(Who who, ObjectId id);
    [[nodiscard]] Result<ObjectId> createViommu(Who who, ObjectId device);
    [[nodiscard]] Result<> destroyViommu(Who who, ObjectId viommu);
    [[nodiscard]] Result<> createVdevice(Who who, ObjectId device, ObjectId viommu, std::uint64_t virtual_id);
    [[nodiscard]] Result<> destroyVdevice(Who who, ObjectId device);
    // TDISP LOCK (SET_TDI_STATE through the TSM).
    [[nodiscard]] Result<> bind(Who who, ObjectId device);
    // Relays one of the guest's requests (kTsmOpRules) unchanged, after checking the
    // op, its payload's size and the TDI state it needs.
    [[nodiscard]] Result<TsmReply> tsmRequest(Who who, ObjectId device, std::string_view op,
                                              std::span<const std::uint8_t> payload);
    // Deprecated: maps onto tsmRequest("set-tdi-state") and the interface report.
    [[nodiscard]] Result<std::vector<std::uint8_t>> guestRequest(Who who, ObjectId device, GuestRequestScope scope,
                                                                 std::span<const std::uint8_t> request);
    // TDISP STOP; also the way out of quarantine, on the kernel's word.
    [[nodiscard]] Result<> unbind(Who who, ObjectId device);
    // A function reset: of an unlocked TDI, or of a quarantined one by an administrator
    // on the admin door (which then adopts the state the kernel reports).
    [[nodiscard]] Result<> reset(Who who, ObjectId device);
    // One whole evidence object of the TDI with its generation, never mixed from two.
    [[nodiscard]] Result<Evidence> evidence(Who who, ObjectId device, EvidenceKind kind);
    [[nodiscard]] Result<UniqueFd> vfioFd(Who who, ObjectId device);
    // Re-reads the interface state of every TDI the TSM holds: nothing tells userspace
    // when a host config write or reset breaks one, so the daemon asks. What changed
    // behind its back becomes a fault (takeFaults).
    void watchTdis();
    // Re-reads one device's TDI state (a property read: properties tell the truth).
    [[nodiscard]] Result<> refreshDevice(ObjectId device);
    // The faults since the last call, for the doors to signal: quarantines, and TDI
    // states the daemon did not cause.
    [[nodiscard]] std::vector<DeviceFault> takeFaults();
    // Ranges a failed undo left revoked since the last call (MemoryRevoked).
    [[nodiscard]] std::vector<RevokedRange> takeFailedClosed();
    // [start, end) windows a failed undo left that the kernel has not let the daemon
    // close yet (kept in the snapshot; closed first on restore and before conversions).
    [[nodiscard]] const std::vector<std::pair<std::uint64_t, std::uint64_t>>& uncertainWindows() const {
        return uncertain_;
    }

    // Leaf-first unwind of everything: a drain of the object table. Returns what
    // failed along the way (each failure was stepped over: closing the fds makes the
    // kernel converge). It needs no caller: it only takes access away, and the daemon
    // runs it itself when the VMM's last connection closes or it is told to stop;
    // the doors' Teardown methods authorize before they call it.
    std::vector<Error> teardown();

    // --- policy ---
    [[nodiscard]] const Guard& guard() const { return guard_; }
    // A reloaded policy applies to the calls that follow; returns what the guest
    // holds that it no longer allows (reported, never torn down behind the VMM).
    [[nodiscard]] std::vector<PolicyFinding> setPolicy(Policy policy);

    // --- change notification ---
    // Called after every change of the model (objects, states, page states, counters).
    void subscribe(std::function<void()> listener) { listeners_.push_back(std::move(listener)); }

    // --- restart survival (core/recovery.cpp) ---
    // Re-adopts what a previous instance kept: checks each fd of `image` with the
    // kernel, rebuilds the model and the object table from it, replays `journal`,
    // finishes or undoes the memory operation a crash interrupted, and destroys
    // iommufd objects nothing accounts for. Nothing is re-mapped or re-pinned. The
    // image's fds the guest does not take are closed.
    [[nodiscard]] Result<RestoreReport> restore(GuestImage image, const std::vector<JournaledIntent>& journal);
    void setMemoryObserver(MemoryObserver* observer) { observer_ = observer; }
    // Changes when anything but page states changes (objects, TDI states, the
    // guest's state): then a new snapshot is due; page-state changes are journaled.
    [[nodiscard]] std::uint64_t generation() const;

    // --- read model ---
    [[nodiscard]] const GuestConfig& config() const { return config_; }
    [[nodiscard]] GuestState state() const { return state_; }
    [[nodiscard]] const VmContext* vm() const { return vm_ ? &*vm_ : nullptr; }
    [[nodiscard]] const ObjectTable& objects() const { return objects_; }
    [[nodiscard]] std::uint32_t ioasId() const { return objects_.kernelId(kIoasKey); }
    [[nodiscard]] std::uint32_t hwptId() const { return objects_.kernelId(kHwptKey); }
    [[nodiscard]] const std::map<ObjectId, Device>& devices() const { return devices_; }
    [[nodiscard]] const std::map<ObjectId, VIommu>& viommus() const { return viommus_; }
    [[nodiscard]] const std::map<ObjectId, MemoryRegion>& memory() const { return memory_; }
    // What region `r`'s IOMMU mappings may reach on this kernel.
    [[nodiscard]] MappingRules mappingRules(const MemoryRegion& r) const;
    // Bytes of `r` the IOMMU maps now (and so pins).
    [[nodiscard]] std::uint64_t mappedBytes(const MemoryRegion& r) const;
    [[nodiscard]] std::optional<ObjectId> findDevice(const Bdf& bdf) const;
    [[nodiscard]] std::uint64_t conversions() const { return conversions_; }
    [[nodiscard]] ObjectId nextObjectId() const { return next_id_; }
    [[nodiscard]] std::uint64_t revocations() const { return revocations_; }

private:
    [[nodiscard]] Result<> requireVm(std::string_view step) const;
    // The guest has a VM (else InvalidState naming `step`) and a device `id` (else NotFound).
    [[nodiscard]] Result<Device*> deviceFor(std::string_view step, ObjectId id);
    // The first guest_memfd tells whether the IOMMU maps guest_memfd by file.
    [[nodiscard]] Result<> probeGuestMemfdMapping(int gmem, std::uint64_t offset);
    // TDI (tdi.cpp). Whether the TSM holds a device context for `d` (a vDEVICE on a
    // TSM vIOMMU of a TDISP function).
    [[nodiscard]] bool hasTsmContext(const Device& d) const;
    // Connects the DSM of `d` unless it is; the undo disconnects what this connected.
    [[nodiscard]] Result<> connectDsm(Device& d, Rollback& undo);
    // One TSM request for `d`. Error unless the TSM answered success; an uncertain
    // outcome of a state-changing op quarantines `d` first.
    [[nodiscard]] Result<kernel::TsmAnswer> relay(Device& d, const TsmOpRule& rule,
                                                  std::span<const std::uint8_t> payload);
    void quarantine(Device& d, const std::string& what);
    [[nodiscard]] Result<TdiState> readTdiState(Device& d);
    // TDISP STOP (SET_TDI_STATE to unlocked); the caller records the new state.
    [[nodiscard]] Result<> stopTdi(Device& d);
    // Re-reads the TDI state from the TSM and adopts it, with a fault, when a config
    // write, reset or disconnect moved it behind the daemon's back.
    [[nodiscard]] Result<> refreshTdi(Device& dev);
    // The TDI's one way to a new state: the table's transition, then the listeners.
    [[nodiscard]] Result<> moveTdi(Device& d, TdiState to);
    // The nest-parent page table is created with the first attached device and
    // destroyed when nothing holds it any more.
    void releaseHwptIfUnused();
    // What an object of each kind holds (its pins), for adding it and re-adding it
    // after a restart alike: one place says who depends on whom.
    [[nodiscard]] std::vector<ObjectKey> holdsOf(const Device& d) const;
    [[nodiscard]] static std::vector<ObjectKey> holdsOf(const VIommu& v);
    [[nodiscard]] static std::vector<ObjectKey> holdsOf(const Device& d, const VDevice& v);
    [[nodiscard]] static std::vector<ObjectKey> holdsOf(const MemoryRegion& m);
    // Undoes the kernel side of one object and forgets its record (drain's step).
    [[nodiscard]] Result<> destroyObject(ObjectKey key, std::uint32_t kernel_id);
    // Memory (memory.cpp). The regions covering [gpa, gpa+size) exactly, each
    // with the part of the range inside it; InvalidArgument if any byte is not memory.
    struct RegionSlice {
        MemoryRegion* region = nullptr;
        std::uint64_t start = 0;
        std::uint64_t end = 0;
    };
    [[nodiscard]] Result<std::vector<RegionSlice>> slicesOf(std::uint64_t gpa, std::uint64_t size);
    // The same slices, each passed to `f` (a Result<>(const RegionSlice&)) in order,
    // only once the whole range is known to be memory; stops at the first error `f`
    // returns. Allocates nothing: the conversion path.
    template <typename F>
    [[nodiscard]] Result<> forEachSlice(std::uint64_t gpa, std::uint64_t size, F&& f);
    // Plans `change`, runs its kernel steps and records the new states; each step and
    // the record register their undo in `undo`. Returns the GPA ranges it unmapped.
    [[nodiscard]] Result<std::vector<RevokedRange>> applyChange(MemoryRegion& region, const Change& change,
                                                                Rollback& undo, ApplyMode mode = ApplyMode::Normal);
    void recordChange(MemoryRegion& region, const Change& change, Rollback& undo);
    // The same, from `before`, the runs of the change's range as they are now.
    void recordChange(MemoryRegion& region, const Change& change, Rollback& undo,
                      std::shared_ptr<const std::vector<PageStates::Run>> before);
    // One memory operation (convert, punch, add, remove), declared before its Rollback
    // so that it acts after it. It gives the operation its kernel-call budget (spent
    // by applyChange), and it fails closed (issue 12): the undo steps set undo_failed_
    // when a kernel call fails, and from then on none of them maps or makes a page
    // private again; if one failed, every window the steps reached (touched_, widened
    // to whole areas) is recorded revoked, reported (MemoryRevoked, a
    // "memory-uncertain" fault) and closed: unmapped at both aliases, attributes set
    // to the record.
    class MemoryOperation {
    public:
        explicit MemoryOperation(Guest& guest, std::size_t budget = kUnlimited) : guest_(guest) {
            guest_.undo_failed_ = false;
            guest_.touched_.clear();
            guest_.call_budget_ = budget;
        }
        MemoryOperation(const MemoryOperation&) = delete;
        MemoryOperation& operator=(const MemoryOperation&) = delete;
        ~MemoryOperation() {
            guest_.afterRollback();
            guest_.call_budget_ = kUnlimited;
        }
        static constexpr std::size_t kUnlimited = SIZE_MAX;

    private:
        Guest& guest_;
    };
    void afterRollback();
    // [from, to) of `r` widened to every IOAS area that may cross its edges.
    [[nodiscard]] std::pair<std::uint64_t, std::uint64_t> areaSpan(const MemoryRegion& r, std::uint64_t from,
                                                                   std::uint64_t to) const;
    // Closes the windows still uncertain; the kernel's answer decides, so a window whose
    // closing failed is tried again before the next conversion or punch.
    [[nodiscard]] Result<> closeUncertain();
    // The pieces a window is put in order with (restart repair, failing closed):
    // - cut at start and end where the kernel can, then unmap what is inside at either
    //   alias (ENOENT: nothing was there); the first real refusal, if any;
    [[nodiscard]] Result<> clearWindow(std::uint64_t start, std::uint64_t end);
    // - the record of [from, to) of `r` says revoked, attributes kept;
    void recordRevoked(MemoryRegion& r, std::uint64_t from, std::uint64_t to, Rollback& undo);
    // - in place, the kernel's attributes of [from, to) of `r` are the record's, every
    //   run tried (under the separate model they are the VMM's: nothing to do); the
    //   first refusal, if any.
    [[nodiscard]] Result<> attributesToRecord(MemoryRegion& r, std::uint64_t from, std::uint64_t to);
    [[nodiscard]] Result<> convertRanges(std::span<const MemoryConversion> ranges, Rollback& undo, ApplyMode mode);
    [[nodiscard]] Result<std::vector<RevokedRange>> revokeRange(std::uint64_t gpa, std::uint64_t size, Rollback& undo,
                                                                ApplyMode mode);
    // Unmaps what the IOMMU maps of [gpa, gpa+size): the removal of a region, also
    // used to undo an addition a crash interrupted.
    void dropMemoryKernelState(std::uint64_t gpa, std::uint64_t size);
    void replay(const MemoryIntent& intent, bool finished, RestoreReport& report);
    // Brings the GPA ranges an interrupted operation touched, whatever it left there,
    // to the states the record holds: cut, cleared, attributes set, mapped by the planner.
    void repairWindows(const std::vector<std::pair<std::uint64_t, std::uint64_t>>& ranges, RestoreReport& report);
    void scrubUnaccountedObjects(RestoreReport& report);
    [[nodiscard]] std::uint32_t viommuType() const;

    void changed();

    GuestConfig config_;
    kernel::Syscalls& sys_;
    Guard guard_;
    std::vector<std::function<void()>> listeners_;
    GuestState state_ = GuestState::Empty;
    std::optional<VmContext> vm_;
    ObjectTable objects_;
    std::map<ObjectId, Device> devices_;
    std::map<ObjectId, VIommu> viommus_;
    std::map<ObjectId, MemoryRegion> memory_;
    std::map<std::uint64_t, ObjectId> memory_by_gpa_;
    std::uint64_t conversions_ = 0;
    std::uint64_t revocations_ = 0;
    MemoryObserver* observer_ = nullptr;
    std::vector<DeviceFault> faults_;
    std::vector<RevokedRange> failed_closed_;
    bool undo_failed_ = false;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> touched_;    // [start, end) of the steps run
    std::vector<std::pair<std::uint64_t, std::uint64_t>> uncertain_;  // windows not yet closed
    std::uint64_t closures_ = 0;  // failed undos closed (in generation(): a snapshot records them)
    // Kernel calls the running operation may still plan.
    std::size_t call_budget_ = MemoryOperation::kUnlimited;
    ObjectId next_id_ = 1;
};

[[nodiscard]] std::optional<kernel::VmType> parseVmType(std::string_view s);
[[nodiscard]] std::string_view toString(kernel::VmType t);

}  // namespace tio::core
