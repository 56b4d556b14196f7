#pragma once
// Own copy of the VFIO device-cdev parts of <linux/vfio.h>. The 6.1 headers on the
// build hosts lack BIND/ATTACH/DETACH_IOMMUFD_PT (toolchain.md 10b). Values from
// kernel-uapi.md 2.2/2.3. VFIO ioctls are _IO(';', 100 + n); size comes from argsz.
#include <cstddef>
#include <cstdint>

#include "kernel/uapi/ioctl_encoding.hpp"

namespace tio::uapi {

inline constexpr std::uint32_t kVfioType = ';';
inline constexpr std::uint32_t kVfioBase = 100;

inline constexpr unsigned long VFIO_DEVICE_GET_INFO = io(kVfioType, kVfioBase + 7);
inline constexpr unsigned long VFIO_DEVICE_RESET = io(kVfioType, kVfioBase + 11);
inline constexpr unsigned long VFIO_DEVICE_BIND_IOMMUFD = io(kVfioType, kVfioBase + 18);
inline constexpr unsigned long VFIO_DEVICE_ATTACH_IOMMUFD_PT = io(kVfioType, kVfioBase + 19);
inline constexpr unsigned long VFIO_DEVICE_DETACH_IOMMUFD_PT = io(kVfioType, kVfioBase + 20);
static_assert(VFIO_DEVICE_GET_INFO == 0x3B6B && VFIO_DEVICE_RESET == 0x3B6F);
static_assert(VFIO_DEVICE_BIND_IOMMUFD == 0x3B76 && VFIO_DEVICE_ATTACH_IOMMUFD_PT == 0x3B77 &&
              VFIO_DEVICE_DETACH_IOMMUFD_PT == 0x3B78);

inline constexpr std::uint32_t VFIO_DEVICE_FLAGS_RESET = 1U << 0U;
inline constexpr std::uint32_t VFIO_DEVICE_FLAGS_PCI = 1U << 1U;
inline constexpr std::uint32_t VFIO_DEVICE_FLAGS_CAPS = 1U << 7U;

struct vfio_device_info {
    std::uint32_t argsz;
    std::uint32_t flags;
    std::uint32_t num_regions;
    std::uint32_t num_irqs;
    std::uint32_t cap_offset;
    std::uint32_t pad;
};
static_assert(sizeof(vfio_device_info) == 24 && offsetof(vfio_device_info, num_regions) == 8 &&
              offsetof(vfio_device_info, cap_offset) == 16);

inline constexpr std::uint32_t VFIO_DEVICE_BIND_FLAG_TOKEN = 1U << 0U;
struct vfio_device_bind_iommufd {
    std::uint32_t argsz;
    std::uint32_t flags;
    std::int32_t iommufd;
    std::uint32_t out_devid;
    std::uint64_t token_uuid_ptr;
};
static_assert(sizeof(vfio_device_bind_iommufd) == 24 && offsetof(vfio_device_bind_iommufd, iommufd) == 8 &&
              offsetof(vfio_device_bind_iommufd, out_devid) == 12 &&
              offsetof(vfio_device_bind_iommufd, token_uuid_ptr) == 16);
// Kernels without the TOKEN flag accept the 16-byte form; we always send what we carry.

inline constexpr std::uint32_t VFIO_DEVICE_ATTACH_PASID = 1U << 0U;
inline constexpr std::uint32_t VFIO_DEVICE_DETACH_PASID = 1U << 0U;  // vfio_device_detach_iommufd_pt.flags
struct vfio_device_attach_iommufd_pt {
    std::uint32_t argsz;
    std::uint32_t flags;
    std::uint32_t pt_id;  // in: IOAS/HWPT id; out: the HWPT actually attached
    std::uint32_t pasid;
};
static_assert(sizeof(vfio_device_attach_iommufd_pt) == 16 && offsetof(vfio_device_attach_iommufd_pt, pt_id) == 8 &&
              offsetof(vfio_device_attach_iommufd_pt, pasid) == 12);

struct vfio_device_detach_iommufd_pt {
    std::uint32_t argsz;
    std::uint32_t flags;
    std::uint32_t pasid;
};
static_assert(sizeof(vfio_device_detach_iommufd_pt) == 12 && offsetof(vfio_device_detach_iommufd_pt, pasid) == 8);

}  // namespace tio::uapi
