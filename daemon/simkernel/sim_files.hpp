#pragma once
// The simulated files: /dev/kvm, a KVM VM, guest_memfd, the KVM-VFIO device,
// /dev/iommu (an iommufd context) and VFIO device cdevs.
#include <cstdint>
#include <map>
#include <set>
#include <vector>

#include "common/range_map.hpp"
#include "simkernel/io_page_table.hpp"
#include "simkernel/sim_kernel.hpp"

namespace tio::sim {

// An IOVA range end meaning "to the end of the address space".
inline constexpr std::uint64_t kEverything = UINT64_MAX;

// How an area names a host file (a memfd, not a simulator file) it maps: by inode,
// with the top bit set so it never equals a simulator file's key (its address).
[[nodiscard]] inline std::uintptr_t hostFileKey(ino_t ino) { return static_cast<std::uintptr_t>(ino) | (1ULL << 63U); }

class KvmVmFile;
class GuestMemfdFile;
class IommufdFile;

class KvmSystemFile final : public SimFile {
public:
    using SimFile::SimFile;
    std::string link() const override { return "/dev/kvm"; }
    dev_t rdev() const override;
    long ioctl(IoctlCall& call) override;
};

// A VM answers only the process that created it (kvm_vm_ioctl: `kvm->mm !=
// current->mm` is EIO), and so do its vCPUs and KVM devices.
class KvmVmFile final : public SimFile {
public:
    KvmVmFile(SimKernel& k, std::uint32_t type, pid_t creator) : SimFile(k), type_(type), creator_(creator) {}
    std::string link() const override { return "anon_inode:kvm-vm"; }
    long ioctl(IoctlCall& call) override;
    [[nodiscard]] bool ownedBy(pid_t caller) const { return caller == creator_; }
    [[nodiscard]] bool isPrivate(std::uint64_t gpa) const { return private_.find(gpa).has_value(); }
    // The GPA where `gmem` offset is guest memory of this VM, if it is.
    [[nodiscard]] std::optional<std::uint64_t> gpaOf(const GuestMemfdFile* gmem, std::uint64_t offset) const;
    void unbindGuestMemfd(GuestMemfdFile* gmem);

    struct Memslot {
        std::uint64_t gpa = 0;
        std::uint64_t size = 0;
        GuestMemfdFile* gmem = nullptr;  // weak: the binding does not pin the file (kvm_gmem_bind)
        std::uint64_t offset = 0;
        // The separate model's shared backing, as userspace_addr showed it when the
        // slot was made (GUP on the creator's mapping): the host file's key and the
        // offset of the slot's first page in it; 0 when none.
        std::uintptr_t shared_key = 0;
        std::uint64_t shared_offset = 0;
    };
    [[nodiscard]] const std::map<std::uint32_t, Memslot>& memslots() const { return slots_; }
    [[nodiscard]] const RangeMap<bool>& privateRanges() const { return private_; }

    // In-place conversion: the attribute of `gmem`'s [start, end) changed; every GPA
    // range of this VM bound to it follows.
    void gmemAttributesChanged(const GuestMemfdFile* gmem, std::uint64_t start, std::uint64_t end);

    std::uint32_t type_;
    bool has_vfio_device_ = false;
    bool poisoned_ = false;  // a machine check hit this guest's memory (TDX)

private:
    long checkExtension(std::uint64_t cap) const;
    long createVcpu(IoctlCall& call);
    long setMemslot(IoctlCall& call);
    long setAttributes(IoctlCall& call);
    long createDevice(IoctlCall& call);
    void release() override;

    pid_t creator_;
    std::set<std::uint64_t> vcpus_;
    std::map<std::uint32_t, Memslot> slots_;
    // GPA ranges that are private (only `true` runs are stored): set by the VM-scoped
    // ioctl, or, with in-place conversion, mirrored from the guest_memfds bound here.
    RangeMap<bool> private_;
};

class KvmVcpuFile final : public SimFile {
public:
    KvmVcpuFile(SimKernel& k, KvmVmFile* vm, std::uint64_t id) : SimFile(k), vm_(vm), id_(id) {}
    std::string link() const override { return "anon_inode:kvm-vcpu:" + std::to_string(id_); }
    long ioctl(IoctlCall& call) override;

private:
    void release() override { vm_.reset(); }
    FileRef<KvmVmFile> vm_;
    std::uint64_t id_;
};

class GuestMemfdFile final : public SimFile {
public:
    GuestMemfdFile(SimKernel& k, KvmVmFile* vm, std::uint64_t size, std::uint64_t flags);
    // The kernel's name for it (verified on 6.18): identity is read from here.
    std::string link() const override { return "anon_inode:[kvm-gmem]"; }
    std::uint64_t size() const override { return size_; }
    // KVM_SET_MEMORY_ATTRIBUTES2 where the profile has in-place conversion; like every
    // guest_memfd file operation, it is not tied to the VM's creator (kvm_gmem_ioctl).
    long ioctl(IoctlCall& call) override;
    int fallocate(int mode, std::uint64_t offset, std::uint64_t length) override;
    // With GUEST_MEMFD_FLAG_MMAP, its pages live in a memfd of the simulator's, which
    // is what a process mmaps (and so what /proc/PID/maps names).
    [[nodiscard]] int pagesFd() const override { return pages_ ? pages_.get() : -ENODEV; }
    [[nodiscard]] bool backedBy(dev_t dev, ino_t ino) const { return pages_ && pages_dev_ == dev && pages_ino_ == ino; }
    [[nodiscard]] bool isPrivate(std::uint64_t offset) const { return private_.find(offset).has_value(); }
    [[nodiscard]] const RangeMap<bool>& privateOffsets() const { return private_; }

    FileRef<KvmVmFile> vm_;
    std::uint64_t size_;
    std::uint64_t flags_;
    std::set<std::pair<KvmVmFile*, std::uint32_t>> bindings_;  // (vm, slot)
    std::uint64_t pinned_ = 0;                                 // IOAS areas holding this file
    std::uint64_t pinned_by_address_ = 0;                      // those of them pinned through a mapping
    // An area holding this file came (`add`) or went.
    void pin(bool by_address, bool add) {
        pinned_ = add ? pinned_ + 1 : pinned_ - 1;
        if (by_address) pinned_by_address_ = add ? pinned_by_address_ + 1 : pinned_by_address_ - 1;
    }
    RangeMap<bool> punched_;  // offsets whose pages were discarded and not allocated again

private:
    long setAttributes(IoctlCall& call);
    void release() override;
    RangeMap<bool> private_;  // in-place conversion: offsets that are private
    UniqueFd pages_;          // the memfd the pages live in (MMAP flag only)
    dev_t pages_dev_ = 0;
    ino_t pages_ino_ = 0;
};

class VfioDeviceFile;

class KvmVfioDeviceFile final : public SimFile {
public:
    KvmVfioDeviceFile(SimKernel& k, KvmVmFile* vm) : SimFile(k), vm_(vm) {}
    std::string link() const override { return "anon_inode:kvm-vfio"; }
    long ioctl(IoctlCall& call) override;

private:
    void release() override;
    FileRef<KvmVmFile> vm_;
    std::vector<FileRef<VfioDeviceFile>> files_;
};

enum class ObjType : std::uint8_t { Ioas, HwptPaging, Device, Viommu, Vdevice };

struct IoArea {
    std::uint64_t length = 0;
    std::uint64_t start = 0;  // offset in the file
    bool writeable = false;
    std::uintptr_t file_key = 0;  // identity of the file (JOIN needs the same one)
    FileRef<GuestMemfdFile> gmem;
    UniqueFd host_file;              // a real memfd, when the mapped file is not a simulator file
    bool pinned_by_address = false;  // IOMMU_IOAS_MAP: pages pinned through a process's mapping (GUP)
};

// One iommufd object. `users` counts references from other objects, not the table's
// own (so destroy needs users == 0; the kernel's refcount_dec_if_one on users == 1).
struct IommuObj {
    ObjType type = ObjType::Ioas;
    std::uint32_t users = 0;
    std::map<std::uint64_t, IoArea> areas;  // IOAS: iova -> area
    RangeMap<unsigned> limits;              // IOAS: page-size limits (shift), from RESHAPE LIMIT
    std::uint32_t ioas = 0;                 // HWPT: its IOAS
    IoPageTable table;                      // HWPT: the page table the device walks
    bool nest_parent = false;
    VfioDeviceFile* device = nullptr;  // DEVICE: the bound cdev
    std::uint32_t hwpt = 0;            // DEVICE: attached HWPT; VIOMMU: its nest parent
    std::uint32_t vdevice = 0;         // DEVICE: its vDEVICE
    FileRef<KvmVmFile> kvm;            // DEVICE and VIOMMU: the VM (proposed TSM series)
    std::uint32_t viommu_type = 0;
    std::uint32_t viommu = 0;  // VDEVICE
    std::uint32_t dev = 0;     // VDEVICE: its DEVICE
    std::uint64_t virt_id = 0;
};

class IommufdFile final : public SimFile {
public:
    using SimFile::SimFile;
    std::string link() const override { return "/dev/iommu"; }
    dev_t rdev() const override;
    long ioctl(IoctlCall& call) override;

    // Called by VFIO: BIND creates a DEVICE object; unbind (cdev close) destroys it,
    // force-destroying its vDEVICE and tombstoning the id (v6.17 behaviour).
    std::uint32_t bindDevice(VfioDeviceFile* dev, KvmVmFile* kvm);
    void unbindDevice(std::uint32_t dev_id);
    int attach(std::uint32_t dev_id, std::uint32_t pt_id);
    int detach(std::uint32_t dev_id);
    // The device's page table (its attached HWPT's), or null when it is not attached.
    [[nodiscard]] const IoPageTable* tableOf(std::uint32_t dev_id) const;
    // How many areas the IOAS of the device's HWPT holds.
    [[nodiscard]] std::uint64_t areaCount(std::uint32_t dev_id) const;
    // The area mapping `iova` in the IOAS of the device's HWPT.
    [[nodiscard]] const IoArea* areaAt(std::uint32_t dev_id, std::uint64_t iova) const;
    // Jason's truncate rule (kernel-uapi.md 5.4): every area mapping any of [start, end)
    // of `gmem` is revoked whole. Returns how many were.
    std::uint64_t revokeAreasOf(const GuestMemfdFile* gmem, std::uint64_t start, std::uint64_t end);
    // The lowest offset of [start, end) of `gmem` an area pins by address, if any.
    [[nodiscard]] std::optional<std::uint64_t> firstPinnedByAddress(const GuestMemfdFile* gmem, std::uint64_t start,
                                                                    std::uint64_t end) const;

private:
    IommuObj* find(std::uint32_t id, ObjType type);
    const IommuObj* find(std::uint32_t id, ObjType type) const;
    std::uint32_t add(IommuObj obj);
    // The segments areas and limits make, whole, for every area overlapping [s, e).
    [[nodiscard]] IoPageTable::Segments layout(const IommuObj& ioas, std::uint64_t s, std::uint64_t e) const;
    // Brings every HWPT of `ioas_id` in line with its areas over [s, e) and counts it;
    // `restructure` for the hitless operations (the mapped set must not change).
    void sync(std::uint32_t ioas_id, std::uint64_t s, std::uint64_t e, bool restructure);
    long reshape(IoctlCall& c);
    void dropArea(IoArea& area);
    void destroyObject(std::uint32_t id);
    void release() override;

    long ioasAlloc(IoctlCall& c);
    long destroy(IoctlCall& c);
    long iovaRanges(IoctlCall& c);
    long mapFile(IoctlCall& c);
    long mapAddress(IoctlCall& c);
    // The common end of both maps: a free IOVA range for `area`, then the page tables.
    long insertArea(IommuObj& ioas, std::uint32_t ioas_id, std::uint32_t flags, std::uint64_t& iova, IoArea area);
    long unmap(IoctlCall& c);
    long hwptAlloc(IoctlCall& c);
    long hwInfo(IoctlCall& c);
    long viommuAlloc(IoctlCall& c);
    long vdeviceAlloc(IoctlCall& c);
    long noiommuGetPa(IoctlCall& c);
    // IOMMU_VDEVICE_TSM_REQ (sim_tsm.cpp): tsmReq copies tsm_code back on every path.
    long tsmReq(IoctlCall& c);
    long tsmReqBody(IoctlCall& c, std::uint64_t& tsm_code);

    std::map<std::uint32_t, IommuObj> objects_;
    std::set<std::uint32_t> tombstones_;
};

class VfioDeviceFile final : public SimFile {
public:
    VfioDeviceFile(SimKernel& k, PciFunction& fn) : SimFile(k), fn_(&fn) {}
    std::string link() const override;
    dev_t rdev() const override;
    long ioctl(IoctlCall& call) override;

    void setKvm(KvmVmFile* vm) { kvm_ = FileRef<KvmVmFile>(vm); }
    [[nodiscard]] PciFunction& function() { return *fn_; }
    [[nodiscard]] IommufdFile* iommufd() const { return ictx_.get(); }
    [[nodiscard]] KvmVmFile* kvm() const { return kvm_.get(); }
    [[nodiscard]] std::uint32_t devId() const { return dev_id_; }

private:
    void release() override;
    PciFunction* fn_;
    FileRef<KvmVmFile> kvm_;     // from KVM_DEV_VFIO_FILE_ADD, captured at bind
    FileRef<IommufdFile> ictx_;  // held while bound (the kernel's iommufd file reference)
    std::uint32_t dev_id_ = 0;
};

}  // namespace tio::sim
