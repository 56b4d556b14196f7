#include "kernel/features.hpp"

#include <cerrno>

#include "kernel/kernel_error.hpp"
#include "kernel/uapi/iommufd.hpp"
#include "kernel/uapi/iommufd_reshape_proposed.hpp"
#include "kernel/uapi/iommufd_tsm_proposed.hpp"

namespace tio::kernel {
namespace {

using namespace tio::uapi;

// Issues `request` with an all-zero struct of the right size except `size` (every
// id 0, which no object has). An absent ioctl answers ENOTTY; a present one refuses
// the argument it recognised: ENOENT (no object 0), EINVAL or EOPNOTSUPP. Any other
// answer says nothing either way (a failure, not a fingerprint) and fails the probe.
template <typename T>
Result<bool> present(Syscalls& sys, int fd, unsigned long request) {
    T arg{};
    arg.size = sizeof(T);
    auto r = sys.ioctl(fd, request, reinterpret_cast<unsigned long>(&arg));
    if (r) return true;  // cannot happen with id 0, but it plainly exists
    switch (r.error()) {
        case ENOTTY: return false;
        case ENOENT:
        case EINVAL:
        case EOPNOTSUPP: return true;
        default: return std::unexpected(kernelError("probe iommufd", r.error()));
    }
}

// The TSM request of RFC v7. A proposed ioctl may sit on a number a merged one takes
// (the obsolete v5 bind sat at 0x95, IOMMU_IOAS_NOIOMMU_GET_PA since 7.3, which
// answers EINVAL to a struct too small for it), so only the proposal's own answers
// count (kernel-as-it-is.md 5): its zeroed 48-byte request names vDEVICE 0 (ENOENT),
// and a 40-byte one (v5's size) is below its minimum (EINVAL). Both, or it is not v7.
Result<bool> tsmRequestPresent(Syscalls& sys, int fd) {
    iommu_vdevice_tsm_req arg{};
    arg.size = sizeof arg;
    auto full = sys.ioctl(fd, IOMMU_VDEVICE_TSM_REQ, reinterpret_cast<unsigned long>(&arg));
    if (full) return fail(Code::Kernel, "probe iommufd: IOMMU_VDEVICE_TSM_REQ accepted vDEVICE 0");
    if (full.error() == ENOTTY || full.error() == EINVAL || full.error() == EOPNOTSUPP) return false;
    if (full.error() != ENOENT) return std::unexpected(kernelError("probe IOMMU_VDEVICE_TSM_REQ", full.error()));
    arg = {};
    arg.size = 40;
    auto v5 = sys.ioctl(fd, IOMMU_VDEVICE_TSM_REQ, reinterpret_cast<unsigned long>(&arg));
    if (v5) return fail(Code::Kernel, "probe iommufd: IOMMU_VDEVICE_TSM_REQ accepted vDEVICE 0");
    if (v5.error() == EINVAL) return true;
    if (v5.error() == ENOENT || v5.error() == ENOTTY || v5.error() == EOPNOTSUPP) return false;
    return std::unexpected(kernelError("probe IOMMU_VDEVICE_TSM_REQ", v5.error()));
}

}  // namespace

Result<IommuFeatures> probeFeatures(Syscalls& sys, const Iommufd& iommufd) {
    IommuFeatures f;
    const int fd = iommufd.fd();
    auto map_file = present<iommu_ioas_map_file>(sys, fd, IOMMU_IOAS_MAP_FILE);
    if (!map_file) return std::unexpected(map_file.error());
    auto viommu = present<iommu_viommu_alloc>(sys, fd, IOMMU_VIOMMU_ALLOC);
    if (!viommu) return std::unexpected(viommu.error());
    auto vdevice = present<iommu_vdevice_alloc>(sys, fd, IOMMU_VDEVICE_ALLOC);
    if (!vdevice) return std::unexpected(vdevice.error());
    auto tsm_req = tsmRequestPresent(sys, fd);
    if (!tsm_req) return std::unexpected(tsm_req.error());
    auto reshape = present<iommu_ioas_reshape>(sys, fd, IOMMU_IOAS_RESHAPE);
    if (!reshape) return std::unexpected(reshape.error());
    f.map_file = *map_file;
    f.reshape = *reshape;
    f.viommu = *viommu;
    f.vdevice = *vdevice;
    f.tsm_request = *tsm_req;
    return f;
}

Result<bool> probeGuestMemfdMapping(Iommufd& iommufd, int gmem, std::uint64_t offset) {
    // Page-aligned, inside every IOAS's aperture, alone on its IOAS.
    constexpr std::uint64_t kProbeIova = 1ULL << 30U;
    constexpr std::uint64_t kProbeLength = 4096;
    auto scratch = iommufd.allocIoas();
    if (!scratch) return std::unexpected(scratch.error());
    auto mapped = iommufd.mapFile(*scratch, gmem, offset, kProbeLength, kProbeIova, true);
    // Nothing but this function knows the scratch IOAS: it must not outlive the probe.
    // An IOAS no device uses cannot be busy; a second try covers a passing failure.
    auto destroyed = iommufd.destroy(*scratch);
    if (!destroyed) destroyed = iommufd.destroy(*scratch);
    if (!mapped && mapped.error().sys_errno != EINVAL) return std::unexpected(mapped.error());
    if (!destroyed) return std::unexpected(destroyed.error());
    return mapped.has_value();
}

}  // namespace tio::kernel
