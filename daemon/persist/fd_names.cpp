#include "persist/fd_names.hpp"

namespace tio::persist {

std::string objectFdName(std::string_view kind, core::ObjectId id) {
    return std::string(kind) + "-" + std::to_string(id);
}

namespace {

// Same file, same name (the identity was taken from the kernel when the fd came in):
// `kind` and the lowest id of a region whose `file` is the same one.
std::string fileFdName(const core::Guest& guest, core::ObjectId id, std::string_view kind,
                       core::MemoryRegion::FileKey core::MemoryRegion::*file) {
    const auto& mine = guest.memory().at(id).*file;
    for (const auto& [other, m] : guest.memory()) {
        if (other >= id) break;
        if (m.*file == mine) return objectFdName(kind, other);
    }
    return objectFdName(kind, id);
}

}  // namespace

std::string memoryFdName(const core::Guest& guest, core::ObjectId id) {
    return fileFdName(guest, id, kMemoryFd, &core::MemoryRegion::file_identity);
}

std::string sharedFdName(const core::Guest& guest, core::ObjectId id) {
    if (!guest.memory().at(id).shared) return {};
    return fileFdName(guest, id, kSharedFd, &core::MemoryRegion::shared_identity);
}

std::vector<NamedFd> ownedFds(const core::Guest& guest) {
    std::vector<NamedFd> out;
    const core::VmContext* vm = guest.vm();
    if (vm == nullptr) return out;
    out.push_back({std::string(kVmFd), vm->vm.fd()});
    out.push_back({std::string(kIommufdFd), vm->iommufd.fd()});
    for (const auto& [id, d] : guest.devices()) {
        out.push_back({objectFdName(kDeviceFd, id), d.vfio.fd()});
        out.push_back({objectFdName(kClaimFd, id), d.claim.fd()});
    }
    for (const auto& [id, m] : guest.memory()) {
        const std::string n = memoryFdName(guest, id);
        if (n == objectFdName(kMemoryFd, id)) out.push_back({n, m.gmem.get()});
        const std::string shm = sharedFdName(guest, id);
        if (shm == objectFdName(kSharedFd, id)) out.push_back({shm, m.shared.get()});
    }
    return out;
}

}  // namespace tio::persist
