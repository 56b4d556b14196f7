#pragma once
// The simulated files: /dev/kvm, a KVM VM, guest_memfd, the KVM-VFIO device,
// /dev/iommu (an iommufd context) and VFIO device cdevs.
#include <cstdint>
#include <map>
#include <set>
#include <vector>

#include "simkernel/sim_kernel.hpp"

namespace tio::sim {

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

class KvmVmFile final : public SimFile {
public:
    KvmVmFile(SimKernel& k, std::uint32_t type) : SimFile(k), type_(type) {}
    std::string link() const override { return "anon_inode:kvm-vm"; }
    long ioctl(IoctlCall& call) override;
    [[nodiscard]] bool isPrivate(std::uint64_t gpa) const;
    void unbindGuestMemfd(GuestMemfdFile* gmem);

    std::uint32_t type_;
    bool has_vfio_device_ = false;

private:
    struct Memslot {
        std::uint64_t gpa = 0;
        std::uint64_t size = 0;
        GuestMemfdFile* gmem = nullptr;  // weak: the binding does not pin the file (kvm_gmem_bind)
        std::uint64_t offset = 0;
    };
    long checkExtension(std::uint64_t cap) const;
    long setMemslot(IoctlCall& call);
    long setAttributes(IoctlCall& call);
    long createDevice(IoctlCall& call);
    void release() override;

    std::map<std::uint32_t, Memslot> slots_;
    std::map<std::uint64_t, std::uint64_t> private_;  // [start, end) GPA ranges marked private
};

class GuestMemfdFile final : public SimFile {
public:
    GuestMemfdFile(SimKernel& k, KvmVmFile* vm, std::uint64_t size, std::uint64_t flags)
        : SimFile(k), vm_(vm), size_(size), flags_(flags) {}
    std::string link() const override { return "anon_inode:[kvm-guest_memfd]"; }
    long ioctl(IoctlCall&) override { return -ENOTTY; }
    int fallocate(int mode, std::uint64_t offset, std::uint64_t length) override;

    FileRef<KvmVmFile> vm_;
    std::uint64_t size_;
    std::uint64_t flags_;
    std::set<std::pair<KvmVmFile*, std::uint32_t>> bindings_;  // (vm, slot)
    std::uint64_t pinned_ = 0;                                  // IOAS areas holding this file

private:
    void release() override;
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
    FileRef<GuestMemfdFile> gmem;
    UniqueFd host_file;  // a real memfd, when the mapped file is not a simulator file
};

// One iommufd object. `users` counts references from other objects, not the table's
// own (so destroy needs users == 0; the kernel's refcount_dec_if_one on users == 1).
struct IommuObj {
    ObjType type = ObjType::Ioas;
    std::uint32_t users = 0;
    std::map<std::uint64_t, IoArea> areas;  // IOAS: iova -> area
    std::uint32_t ioas = 0;                 // HWPT: its IOAS
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
    // DMA translation for a device; an outcome string of the Sim1 contract.
    std::string translate(std::uint32_t dev_id, std::uint64_t iova, std::uint64_t size, bool write);

private:
    IommuObj* find(std::uint32_t id, ObjType type);
    std::uint32_t add(IommuObj obj);
    void destroyObject(std::uint32_t id);
    std::uint64_t hwptCount(std::uint32_t ioas) const;
    void release() override;

    long ioasAlloc(IoctlCall& c);
    long destroy(IoctlCall& c);
    long iovaRanges(IoctlCall& c);
    long mapFile(IoctlCall& c);
    long unmap(IoctlCall& c);
    long hwptAlloc(IoctlCall& c);
    long hwInfo(IoctlCall& c);
    long viommuAlloc(IoctlCall& c);
    long vdeviceAlloc(IoctlCall& c);
    long tsmOp(IoctlCall& c);
    long tsmReq(IoctlCall& c);

    std::map<std::uint32_t, IommuObj> objects_;
    std::set<std::uint32_t> tombstones_;
    std::uint32_t next_id_ = 1;  // xarray ALLOC1: 0 is never an id
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
    [[nodiscard]] std::uint32_t devId() const { return dev_id_; }

private:
    void release() override;
    PciFunction* fn_;
    FileRef<KvmVmFile> kvm_;      // from KVM_DEV_VFIO_FILE_ADD, captured at bind
    FileRef<IommufdFile> ictx_;   // held while bound (the kernel's iommufd file reference)
    std::uint32_t dev_id_ = 0;
};

}  // namespace tio::sim
