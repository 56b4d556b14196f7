#pragma once
// What this kernel's iommufd offers, probed once when a guest gets its iommufd
// (style B.4 item 67: a missing feature is found at start-up and reported as
// NotSupported, never discovered half-way through an operation).
//
// Each ioctl is issued with an argument the kernel must reject *after* it has
// recognised the command: ENOTTY means the ioctl does not exist; any other answer
// (ENOENT for id 0, EINVAL...) means it does.
#include "kernel/iommufd.hpp"

namespace tio::kernel {

struct IommuFeatures {
    bool map_file = false;  // IOMMU_IOAS_MAP_FILE (v6.13)
    bool viommu = false;    // IOMMU_VIOMMU_ALLOC (v6.13)
    bool vdevice = false;   // IOMMU_VDEVICE_ALLOC (v6.13)
    // The TSM series (RFC v7, iommufd_tsm_proposed.hpp): TSM vIOMMU types, vDEVICE
    // bind, IOMMU_VDEVICE_TSM_REQ. Found by its fingerprint, never by "not ENOTTY".
    bool tsm_request = false;
    bool reshape = false;  // IOMMU_IOAS_RESHAPE (proposed): hitless split/join/limit
};

[[nodiscard]] Result<IommuFeatures> probeFeatures(Syscalls& sys, const Iommufd& iommufd);

// Whether IOMMU_IOAS_MAP_FILE takes a guest_memfd (an RFC; merged kernels refuse it
// with EINVAL), by what it does: one page of `gmem` at `offset` is mapped on a scratch
// IOAS no device walks, which is then destroyed with its area.
[[nodiscard]] Result<bool> probeGuestMemfdMapping(Iommufd& iommufd, int gmem, std::uint64_t offset);

}  // namespace tio::kernel
