#include "persist/fd_names.hpp"

namespace tio::persist {

std::string objectFdName(std::string_view kind, core::ObjectId id) {
    return std::string(kind) + "-" + std::to_string(id);
}

std::string memoryFdName(const core::Guest& guest, core::ObjectId id) {
    // Same file, same name (the identity was taken from the kernel when the fd came in).
    const auto& mine = guest.memory().at(id).file_identity;
    for (const auto& [other, m] : guest.memory()) {
        if (other >= id) break;
        if (m.file_identity == mine) return objectFdName(kMemoryFd, other);
    }
    return objectFdName(kMemoryFd, id);
}

std::vector<NamedFd> ownedFds(const core::Guest& guest) {
    std::vector<NamedFd> out;
    const core::VmContext* vm = guest.vm();
    if (vm == nullptr) return out;
    out.push_back({std::string(kVmFd), vm->vm.fd()});
    out.push_back({std::string(kIommufdFd), vm->iommufd.fd()});
    if (vm->kvm_vfio) out.push_back({std::string(kKvmVfioFd), vm->kvm_vfio->fd()});
    for (const auto& [id, d] : guest.devices()) {
        out.push_back({objectFdName(kDeviceFd, id), d.vfio.fd()});
        out.push_back({objectFdName(kClaimFd, id), d.claim.fd()});
    }
    for (const auto& [id, m] : guest.memory()) {
        const std::string n = memoryFdName(guest, id);
        if (n == objectFdName(kMemoryFd, id)) out.push_back({n, m.gmem.get()});
    }
    return out;
}

}  // namespace tio::persist
