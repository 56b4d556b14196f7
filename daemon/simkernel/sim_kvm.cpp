// Simulated KVM for hosts without a usable /dev/kvm: the system fd, VMs, guest_memfd
// and the KVM-VFIO device, with the checks kernel-uapi.md section 3 documents.
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/checked_math.hpp"
#include "kernel/uapi/kvm.hpp"
#include "simkernel/sim_files.hpp"
#include "simkernel/sim_gup.hpp"

namespace tio::sim {

using namespace tio::uapi;

namespace {

std::uint64_t supportedVmTypes(Platform p) {
    std::uint64_t types = 1ULL << KVM_X86_DEFAULT_VM;
    if (p == Platform::Tdx) types |= (1ULL << KVM_X86_SW_PROTECTED_VM) | (1ULL << KVM_X86_TDX_VM);
    if (p == Platform::Snp) types |= (1ULL << KVM_X86_SW_PROTECTED_VM) | (1ULL << KVM_X86_SNP_VM);
    return types;
}

bool isCocoType(std::uint32_t type) { return type != KVM_X86_DEFAULT_VM; }

// With in-place conversion the attribute moves to guest_memfd and the VM-scoped
// capability answers 0 (kvm.gmem_in_place_conversion defaults to on).
long vmScopedAttributes(const SimKernel& k) {
    return k.inPlaceConversion() ? 0 : static_cast<long>(KVM_MEMORY_ATTRIBUTE_PRIVATE);
}

// kvm_gmem_create takes the size as a loff_t: anything above LLONG_MAX is negative.
constexpr std::uint64_t kMaxGuestMemfdSize = static_cast<std::uint64_t>(INT64_MAX);

// Installs a new file as the ioctl's returned fd.
long returnNewFile(SimKernel& k, IoctlCall& call, std::unique_ptr<SimFile> f) {
    auto nf = k.install(std::move(f));
    if (!nf) return -nf.error();
    call.out_fd = std::move(nf->client);
    return 0;
}

}  // namespace

dev_t KvmSystemFile::rdev() const { return makedev(10, 232); }

long KvmSystemFile::ioctl(IoctlCall& call) {
    const unsigned long req = call.desc->request;
    if (req == KVM_GET_API_VERSION) return kKvmApiVersion;
    if (req == KVM_CHECK_EXTENSION) {
        switch (call.value) {
            case KVM_CAP_VM_TYPES: return static_cast<long>(supportedVmTypes(kernel_.platform()));
            case KVM_CAP_DEVICE_CTRL:
            case KVM_CAP_USER_MEMORY2:
            case KVM_CAP_GUEST_MEMFD: return 1;
            case KVM_CAP_MEMORY_ATTRIBUTES: return vmScopedAttributes(kernel_);
            case KVM_CAP_GUEST_MEMFD_FLAGS:
                return static_cast<long>(GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
            default: return 0;
        }
    }
    if (req == KVM_CREATE_VM) {
        if (call.value > 31 || (supportedVmTypes(kernel_.platform()) & (1ULL << call.value)) == 0) return -EINVAL;
        // The VM belongs to the process that creates it: kvm->mm = current->mm.
        return returnNewFile(kernel_, call,
                             std::make_unique<KvmVmFile>(kernel_, static_cast<std::uint32_t>(call.value), call.caller));
    }
    // KVM_CREATE_DEVICE on the system fd is not a VM ioctl: kvm_dev_ioctl answers EINVAL.
    if (req == KVM_CREATE_DEVICE) return -EINVAL;
    return -ENOTTY;
}

long KvmVmFile::checkExtension(std::uint64_t cap) const {
    switch (cap) {
        case KVM_CAP_DEVICE_CTRL:
        case KVM_CAP_USER_MEMORY2:
        case KVM_CAP_GUEST_MEMFD: return 1;
        case KVM_CAP_MEMORY_ATTRIBUTES: return vmScopedAttributes(kernel_);
        // INIT_SHARED is not offered for VMs with private memory (kvm_arch_supports_gmem_init_shared)
        // until in-place conversion makes shared guest_memfd pages legal for them.
        case KVM_CAP_GUEST_MEMFD_FLAGS:
            return static_cast<long>(isCocoType(type_) && !kernel_.inPlaceConversion()
                                         ? GUEST_MEMFD_FLAG_MMAP
                                         : GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
        case KVM_CAP_VM_TYPES: return static_cast<long>(supportedVmTypes(kernel_.platform()));
        default: return 0;
    }
}

long KvmVmFile::ioctl(IoctlCall& call) {
    if (!ownedBy(call.caller)) return -EIO;  // kvm_vm_ioctl: kvm->mm != current->mm
    const unsigned long req = call.desc->request;
    if (req == KVM_CHECK_EXTENSION) return checkExtension(call.value);
    if (req == KVM_CREATE_VCPU) return createVcpu(call);
    if (req == KVM_CREATE_GUEST_MEMFD) {
        const auto g = call.get<kvm_create_guest_memfd>();
        for (auto r : g.reserved)
            if (r != 0) return -EINVAL;
        if (g.size == 0 || g.size > kMaxGuestMemfdSize || !pageAligned(g.size)) return -EINVAL;
        if ((g.flags & ~static_cast<std::uint64_t>(checkExtension(KVM_CAP_GUEST_MEMFD_FLAGS))) != 0) return -EINVAL;
        return returnNewFile(kernel_, call, std::make_unique<GuestMemfdFile>(kernel_, this, g.size, g.flags));
    }
    if (req == KVM_SET_USER_MEMORY_REGION2) return setMemslot(call);
    if (req == KVM_SET_MEMORY_ATTRIBUTES) return setAttributes(call);
    if (req == KVM_CREATE_DEVICE) return createDevice(call);
    return -ENOTTY;
}

long KvmVmFile::setMemslot(IoctlCall& call) {
    const auto m = call.get<kvm_userspace_memory_region2>();
    if ((m.flags & ~KVM_MEM_GUEST_MEMFD) != 0) return -EINVAL;
    if (m.memory_size == 0) {  // delete
        auto it = slots_.find(m.slot);
        if (it == slots_.end()) return 0;
        if (it->second.gmem != nullptr) it->second.gmem->bindings_.erase({this, m.slot});
        slots_.erase(it);
        return 0;
    }
    if (slots_.contains(m.slot)) return -EEXIST;  // moving/resizing a gmem slot is not allowed
    const auto end = checkedEnd(m.guest_phys_addr, m.memory_size);
    if (!end || !pageAligned(m.guest_phys_addr) || !pageAligned(m.memory_size)) return -EINVAL;
    for (const auto& [id, s] : slots_)
        if (m.guest_phys_addr < s.gpa + s.size && s.gpa < *end) return -EEXIST;
    GuestMemfdFile* gmem = nullptr;
    if ((m.flags & KVM_MEM_GUEST_MEMFD) != 0) {
        if (call.fds.empty()) return -EBADF;
        gmem = dynamic_cast<GuestMemfdFile*>(kernel_.resolve(call.fds.front().get()));
        // A guest_memfd is bound to one VM; anything else is EINVAL (kvm_gmem_bind).
        if (gmem == nullptr || gmem->vm_.get() != this) return -EINVAL;
        const auto gend = checkedEnd(m.guest_memfd_offset, m.memory_size);
        if (!gend || *gend > gmem->size_ || !pageAligned(m.guest_memfd_offset)) return -EINVAL;
        // At most one mapping per guest_memfd page.
        for (const auto& [vm, slot] : gmem->bindings_) {
            const auto& o = vm->slots_.at(slot);
            if (m.guest_memfd_offset < o.offset + o.size && o.offset < *gend) return -EEXIST;
        }
        gmem->bindings_.insert({this, m.slot});
    }
    Memslot slot{m.guest_phys_addr, m.memory_size, gmem, m.guest_memfd_offset};
    // Shared memory of the separate model: what the creator mapped at userspace_addr.
    if (m.userspace_addr != 0) {
        if (auto pages = lookupUserPages(call.caller, m.userspace_addr, m.memory_size)) {
            slot.shared_key = hostFileKey(pages->ino);
            slot.shared_offset = pages->offset;
        }
    }
    slots_[m.slot] = slot;
    if (gmem != nullptr && kernel_.inPlaceConversion()) {
        gmemAttributesChanged(gmem, m.guest_memfd_offset, m.guest_memfd_offset + m.memory_size);
    }
    return 0;
}

long KvmVmFile::createVcpu(IoctlCall& call) {
    if (!vcpus_.insert(call.value).second) return -EEXIST;
    return returnNewFile(kernel_, call, std::make_unique<KvmVcpuFile>(kernel_, this, call.value));
}

void KvmVmFile::gmemAttributesChanged(const GuestMemfdFile* gmem, std::uint64_t start, std::uint64_t end) {
    for (const auto& [id, slot] : slots_) {
        if (slot.gmem != gmem) continue;
        const std::uint64_t s = std::max(start, slot.offset);
        const std::uint64_t e = std::min(end, slot.offset + slot.size);
        if (s >= e) continue;
        const std::uint64_t gpa = slot.gpa + (s - slot.offset);
        private_.erase(gpa, gpa + (e - s));
        gmem->privateOffsets().forEach(s, e, [&](std::uint64_t rs, std::uint64_t re, bool) {
            private_.assign(slot.gpa + (rs - slot.offset), slot.gpa + (re - slot.offset), true);
        });
    }
}

long KvmVcpuFile::ioctl(IoctlCall& call) {
    if (!vm_ || !vm_->ownedBy(call.caller)) return -EIO;  // kvm_vcpu_ioctl
    return -ENOTTY;                                       // running vCPUs is not simulated
}

long KvmVmFile::setAttributes(IoctlCall& call) {
    const auto a = call.get<kvm_memory_attributes>();
    const auto end = checkedEnd(a.address, a.size);
    if (a.flags != 0 || (a.attributes & ~static_cast<std::uint64_t>(vmScopedAttributes(kernel_))) != 0) return -EINVAL;
    if (a.size == 0 || !end || !pageAligned(a.address) || !pageAligned(a.size)) return -EINVAL;
    if ((a.attributes & KVM_MEMORY_ATTRIBUTE_PRIVATE) != 0) private_.assign(a.address, *end, true);
    else private_.erase(a.address, *end);
    return 0;
}

std::optional<std::uint64_t> KvmVmFile::gpaOf(const GuestMemfdFile* gmem, std::uint64_t offset) const {
    for (const auto& [id, slot] : slots_) {
        if (slot.gmem == gmem && offset >= slot.offset && offset - slot.offset < slot.size) {
            return slot.gpa + (offset - slot.offset);
        }
    }
    return std::nullopt;
}

long KvmVmFile::createDevice(IoctlCall& call) {
    auto d = call.get<kvm_create_device>();
    if ((d.flags & ~KVM_CREATE_DEVICE_TEST) != 0) return -EINVAL;
    if (d.type != KVM_DEV_TYPE_VFIO) return -ENODEV;
    if ((d.flags & KVM_CREATE_DEVICE_TEST) != 0) return 0;
    if (has_vfio_device_) return -EEXIST;  // only one VFIO device per VM
    auto nf = kernel_.install(std::make_unique<KvmVfioDeviceFile>(kernel_, this));
    if (!nf) return -nf.error();
    has_vfio_device_ = true;
    call.out_fd = std::move(nf->client);
    return 0;
}

void KvmVmFile::unbindGuestMemfd(GuestMemfdFile* gmem) {
    for (auto& [id, s] : slots_)
        if (s.gmem == gmem) s.gmem = nullptr;
}

void KvmVmFile::release() {
    for (auto& [id, s] : slots_)
        if (s.gmem != nullptr) s.gmem->bindings_.erase({this, id});
    slots_.clear();
}

GuestMemfdFile::GuestMemfdFile(SimKernel& k, KvmVmFile* vm, std::uint64_t size, std::uint64_t flags)
    : SimFile(k), vm_(vm), size_(size), flags_(flags) {
    // In-place: pages start private unless created shared.
    if (k.inPlaceConversion() && (flags & GUEST_MEMFD_FLAG_INIT_SHARED) == 0) private_.assign(0, size, true);
    // Mappable: the pages live in a memfd (sparse until touched) that mmap shows.
    if ((flags & GUEST_MEMFD_FLAG_MMAP) != 0) {
        UniqueFd pages(::memfd_create("tio-gmem", MFD_CLOEXEC));
        struct stat st {};
        if (pages && ::ftruncate(pages.get(), static_cast<off_t>(size)) == 0 && ::fstat(pages.get(), &st) == 0) {
            pages_ = std::move(pages);
            pages_dev_ = st.st_dev;
            pages_ino_ = st.st_ino;
        }
    }
}

long GuestMemfdFile::ioctl(IoctlCall& call) {
    if (call.desc->request == KVM_SET_MEMORY_ATTRIBUTES2 && kernel_.inPlaceConversion()) return setAttributes(call);
    return -ENOTTY;
}

long GuestMemfdFile::setAttributes(IoctlCall& call) {
    auto a = call.get<kvm_memory_attributes2>();
    for (auto r : a.reserved)
        if (r != 0) return -EINVAL;
    const auto end = checkedEnd(a.offset, a.size);
    if (a.flags != 0 || (a.attributes & ~KVM_MEMORY_ATTRIBUTE_PRIVATE) != 0) return -EINVAL;
    if (a.size == 0 || !end || *end > size_ || !pageAligned(a.offset) || !pageAligned(a.size)) return -EINVAL;
    // A page the IOMMU pins by address cannot become private (the in-place series
    // refuses it): the conversion stops there, EAGAIN with error_offset. fail-nth's
    // partial progress stops half-way, in whole pages.
    std::uint64_t stop = call.stop_partway ? a.offset + (a.size / kPageSize / 2) * kPageSize : *end;
    // (Only when some area pins this file by address: the search visits every area.)
    if ((a.attributes & KVM_MEMORY_ATTRIBUTE_PRIVATE) != 0 && pinned_by_address_ != 0) {
        kernel_.forEachIommufd([&](IommufdFile& ictx) {
            if (auto pinned = ictx.firstPinnedByAddress(this, a.offset, stop)) stop = *pinned;
        });
    }
    if (stop > a.offset) {
        if ((a.attributes & KVM_MEMORY_ATTRIBUTE_PRIVATE) != 0) private_.assign(a.offset, stop, true);
        else private_.erase(a.offset, stop);
        for (const auto& [vm, slot] : bindings_) vm->gmemAttributesChanged(this, a.offset, stop);
        kernel_.count("gmem_attribute_changes");
    }
    if (stop != *end) {
        a.error_offset = stop;
        call.put(a);
        return -EAGAIN;
    }
    return 0;
}

int GuestMemfdFile::fallocate(int mode, std::uint64_t offset, std::uint64_t length) {
    const auto end = checkedEnd(offset, length);
    if (!end || !pageAligned(offset) || !pageAligned(length) || length == 0) return -EINVAL;
    if (mode == (kFallocPunchHole | kFallocKeepSize)) {
        if (*end > size_) return -EINVAL;
        // Punching pages an IOAS area still maps is the VMM's mistake; the kernel stays
        // safe by revoking every such area whole (kernel-uapi.md 5.4), and the test
        // oracle counts the violation.
        std::uint64_t revoked = 0;
        kernel_.forEachIommufd([&](IommufdFile& ictx) { revoked += ictx.revokeAreasOf(this, offset, *end); });
        if (revoked != 0) {
            kernel_.count("gmem_violations");
            kernel_.count("areas_revoked_by_kernel", revoked);
        }
        punched_.assign(offset, *end, true);
        kernel_.count("gmem_punched_pages", length / kPageSize);
        return 0;
    }
    if (mode == 0 || mode == kFallocKeepSize) return *end <= size_ ? 0 : -EINVAL;  // size is fixed for life
    return -EOPNOTSUPP;
}

void GuestMemfdFile::release() {
    for (const auto& [vm, slot] : bindings_) vm->unbindGuestMemfd(this);
    bindings_.clear();
    vm_.reset();
}

long KvmVfioDeviceFile::ioctl(IoctlCall& call) {
    if (!vm_ || !vm_->ownedBy(call.caller)) return -EIO;  // kvm_device_ioctl
    const auto a = call.get<kvm_device_attr>();
    const unsigned long req = call.desc->request;
    if (req == KVM_HAS_DEVICE_ATTR) {
        return (a.group == KVM_DEV_VFIO_FILE && (a.attr == KVM_DEV_VFIO_FILE_ADD || a.attr == KVM_DEV_VFIO_FILE_DEL))
                   ? 0
                   : -ENXIO;
    }
    if (req != KVM_SET_DEVICE_ATTR) return -ENOTTY;
    if (a.group != KVM_DEV_VFIO_FILE) return -ENXIO;
    if (call.fds.empty()) return -EBADF;
    // iommufd fds and anything that is not a VFIO file are refused (virt/kvm/vfio.c).
    auto* vfio = dynamic_cast<VfioDeviceFile*>(kernel_.resolve(call.fds.front().get()));
    if (vfio == nullptr) return -EINVAL;
    auto it = std::find_if(files_.begin(), files_.end(), [&](const auto& f) { return f.get() == vfio; });
    if (a.attr == KVM_DEV_VFIO_FILE_ADD) {
        if (it != files_.end()) return -EEXIST;
        files_.emplace_back(vfio);
        vfio->setKvm(vm_.get());
        return 0;
    }
    if (a.attr == KVM_DEV_VFIO_FILE_DEL) {
        if (it == files_.end()) return -ENOENT;
        (*it)->setKvm(nullptr);
        files_.erase(it);
        return 0;
    }
    return -ENXIO;
}

void KvmVfioDeviceFile::release() {
    // kvm_vfio_release: every file forgets the VM, then its reference is dropped.
    for (auto& f : files_) f->setKvm(nullptr);
    files_.clear();
    if (vm_) vm_->has_vfio_device_ = false;
    vm_.reset();
}

}  // namespace tio::sim
