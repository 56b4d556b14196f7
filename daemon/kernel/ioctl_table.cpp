#include "kernel/ioctl_table.hpp"

#include <cerrno>
#include <cstring>

#include "kernel/uapi/iommufd.hpp"
#include "kernel/uapi/iommufd_reshape_proposed.hpp"
#include "kernel/uapi/iommufd_tsm_proposed.hpp"
#include "kernel/uapi/kvm.hpp"
#include "kernel/uapi/vfio.hpp"

namespace tio::kernel {
namespace {

using namespace tio::uapi;

template <typename T>
constexpr std::uint32_t sz() {
    return static_cast<std::uint32_t>(sizeof(T));
}

#define TIO_OFF(T, f) static_cast<std::uint32_t>(offsetof(T, f))

// min_size values: kernel-uapi.md 1.3 (iommufd ioctl table in main.c) and 2.2.
// A table, laid out to be read as one.
// clang-format off
const std::array kTable = {
    IoctlDesc{.request = IOMMU_DESTROY, .name = "IOMMU_DESTROY", .size_in_struct = true, .min_size = 8,
              .our_size = sz<iommu_destroy>()},
    IoctlDesc{.request = IOMMU_IOAS_ALLOC, .name = "IOMMU_IOAS_ALLOC", .size_in_struct = true, .min_size = 12,
              .our_size = sz<iommu_ioas_alloc>()},
    IoctlDesc{.request = IOMMU_IOAS_IOVA_RANGES,
              .name = "IOMMU_IOAS_IOVA_RANGES",
              .size_in_struct = true,
              .min_size = 32,
              .our_size = sz<iommu_ioas_iova_ranges>(),
              .pointers = {PointerField{.ptr_offset = TIO_OFF(iommu_ioas_iova_ranges, allowed_iovas),
                                        .len_offset = TIO_OFF(iommu_ioas_iova_ranges, num_iovas),
                                        .elem_size = sz<iommu_iova_range>(),
                                        .dir = Direction::Out}}},
    IoctlDesc{.request = IOMMU_IOAS_MAP, .name = "IOMMU_IOAS_MAP", .size_in_struct = true, .min_size = 40,
              .our_size = sz<iommu_ioas_map>()},
    IoctlDesc{.request = IOMMU_IOAS_UNMAP, .name = "IOMMU_IOAS_UNMAP", .size_in_struct = true, .min_size = 24,
              .our_size = sz<iommu_ioas_unmap>()},
    IoctlDesc{.request = IOMMU_OPTION, .name = "IOMMU_OPTION", .size_in_struct = true, .min_size = 24,
              .our_size = sz<iommu_option>()},
    IoctlDesc{.request = IOMMU_HWPT_ALLOC,
              .name = "IOMMU_HWPT_ALLOC",
              .size_in_struct = true,
              .min_size = 24,
              .our_size = sz<iommu_hwpt_alloc>(),
              .pointers = {PointerField{.ptr_offset = TIO_OFF(iommu_hwpt_alloc, data_uptr),
                                        .len_offset = TIO_OFF(iommu_hwpt_alloc, data_len),
                                        .dir = Direction::In}}},
    IoctlDesc{.request = IOMMU_GET_HW_INFO,
              .name = "IOMMU_GET_HW_INFO",
              .size_in_struct = true,
              .min_size = 32,
              .our_size = sz<iommu_hw_info>(),
              .pointers = {PointerField{.ptr_offset = TIO_OFF(iommu_hw_info, data_uptr),
                                        .len_offset = TIO_OFF(iommu_hw_info, data_len),
                                        .dir = Direction::Out}}},
    IoctlDesc{.request = IOMMU_IOAS_MAP_FILE,
              .name = "IOMMU_IOAS_MAP_FILE",
              .size_in_struct = true,
              .min_size = 40,
              .our_size = sz<iommu_ioas_map_file>(),
              .fd_in = FdField{.offset = TIO_OFF(iommu_ioas_map_file, fd)}},
    IoctlDesc{.request = IOMMU_VIOMMU_ALLOC,
              .name = "IOMMU_VIOMMU_ALLOC",
              .size_in_struct = true,
              .min_size = 24,
              .our_size = sz<iommu_viommu_alloc>(),
              .pointers = {PointerField{.ptr_offset = TIO_OFF(iommu_viommu_alloc, data_uptr),
                                        .len_offset = TIO_OFF(iommu_viommu_alloc, data_len),
                                        .dir = Direction::InOut}}},
    IoctlDesc{.request = IOMMU_VDEVICE_ALLOC, .name = "IOMMU_VDEVICE_ALLOC", .size_in_struct = true,
              .min_size = 24, .our_size = sz<iommu_vdevice_alloc>()},
    // Merged for 7.3 at 0x95, where the obsolete v5 TSM bind once sat.
    IoctlDesc{.request = IOMMU_IOAS_NOIOMMU_GET_PA, .name = "IOMMU_IOAS_NOIOMMU_GET_PA", .size_in_struct = true,
              .min_size = 40, .our_size = sz<iommu_ioas_noiommu_get_pa>()},
    IoctlDesc{.request = IOMMU_VDEVICE_TSM_REQ,
              .name = "IOMMU_VDEVICE_TSM_REQ",
              .size_in_struct = true,
              .min_size = 48,
              .our_size = sz<iommu_vdevice_tsm_req>(),
              .pointers = {PointerField{.ptr_offset = TIO_OFF(iommu_vdevice_tsm_req, req_uptr),
                                        .len_offset = TIO_OFF(iommu_vdevice_tsm_req, req_len),
                                        .dir = Direction::In},
                           PointerField{.ptr_offset = TIO_OFF(iommu_vdevice_tsm_req, resp_uptr),
                                        .len_offset = TIO_OFF(iommu_vdevice_tsm_req, resp_len),
                                        .dir = Direction::Out}}},
    IoctlDesc{.request = IOMMU_IOAS_RESHAPE, .name = "IOMMU_IOAS_RESHAPE", .size_in_struct = true,
              .min_size = 40, .our_size = sz<iommu_ioas_reshape>()},
    IoctlDesc{.request = VFIO_DEVICE_GET_INFO, .name = "VFIO_DEVICE_GET_INFO", .size_in_struct = true,
              .min_size = 16, .our_size = sz<vfio_device_info>()},
    IoctlDesc{.request = VFIO_DEVICE_RESET, .name = "VFIO_DEVICE_RESET", .kind = ArgKind::None},
    IoctlDesc{.request = VFIO_DEVICE_BIND_IOMMUFD,
              .name = "VFIO_DEVICE_BIND_IOMMUFD",
              .size_in_struct = true,
              .min_size = 16,
              .our_size = sz<vfio_device_bind_iommufd>(),
              .pointers = {PointerField{.ptr_offset = TIO_OFF(vfio_device_bind_iommufd, token_uuid_ptr),
                                        .fixed_len = 16,
                                        .flag_offset = TIO_OFF(vfio_device_bind_iommufd, flags),
                                        .flag_mask = VFIO_DEVICE_BIND_FLAG_TOKEN}},
              .fd_in = FdField{.offset = TIO_OFF(vfio_device_bind_iommufd, iommufd)}},
    IoctlDesc{.request = VFIO_DEVICE_ATTACH_IOMMUFD_PT, .name = "VFIO_DEVICE_ATTACH_IOMMUFD_PT",
              .size_in_struct = true, .min_size = 12, .our_size = sz<vfio_device_attach_iommufd_pt>()},
    IoctlDesc{.request = VFIO_DEVICE_DETACH_IOMMUFD_PT, .name = "VFIO_DEVICE_DETACH_IOMMUFD_PT",
              .size_in_struct = true, .min_size = 8, .our_size = sz<vfio_device_detach_iommufd_pt>()},
    IoctlDesc{.request = KVM_GET_API_VERSION, .name = "KVM_GET_API_VERSION", .kind = ArgKind::Value},
    IoctlDesc{.request = KVM_CREATE_VM, .name = "KVM_CREATE_VM", .kind = ArgKind::Value, .returns_fd = true},
    IoctlDesc{.request = KVM_CHECK_EXTENSION, .name = "KVM_CHECK_EXTENSION", .kind = ArgKind::Value},
    IoctlDesc{.request = KVM_CREATE_VCPU, .name = "KVM_CREATE_VCPU", .kind = ArgKind::Value, .returns_fd = true},
    IoctlDesc{.request = KVM_SET_USER_MEMORY_REGION2,
              .name = "KVM_SET_USER_MEMORY_REGION2",
              .min_size = sz<kvm_userspace_memory_region2>(),
              .our_size = sz<kvm_userspace_memory_region2>(),
              .fd_in = FdField{.offset = TIO_OFF(kvm_userspace_memory_region2, guest_memfd),
                               .flag_offset = TIO_OFF(kvm_userspace_memory_region2, flags),
                               .flag_mask = KVM_MEM_GUEST_MEMFD}},
    IoctlDesc{.request = KVM_SET_MEMORY_ATTRIBUTES, .name = "KVM_SET_MEMORY_ATTRIBUTES",
              .min_size = sz<kvm_memory_attributes>(), .our_size = sz<kvm_memory_attributes>()},
    IoctlDesc{.request = KVM_SET_MEMORY_ATTRIBUTES2, .name = "KVM_SET_MEMORY_ATTRIBUTES2",
              .min_size = sz<kvm_memory_attributes2>(), .our_size = sz<kvm_memory_attributes2>()},
    IoctlDesc{.request = KVM_CREATE_GUEST_MEMFD, .name = "KVM_CREATE_GUEST_MEMFD",
              .min_size = sz<kvm_create_guest_memfd>(), .our_size = sz<kvm_create_guest_memfd>(),
              .returns_fd = true},
    IoctlDesc{.request = KVM_CREATE_DEVICE, .name = "KVM_CREATE_DEVICE", .min_size = sz<kvm_create_device>(),
              .our_size = sz<kvm_create_device>(), .out_fd_offset = TIO_OFF(kvm_create_device, fd)},
    // Only the KVM_DEV_VFIO_FILE group is issued through this table; its addr points
    // at an int32 fd, which travels as a file descriptor.
    IoctlDesc{.request = KVM_SET_DEVICE_ATTR,
              .name = "KVM_SET_DEVICE_ATTR",
              .min_size = sz<kvm_device_attr>(),
              .our_size = sz<kvm_device_attr>(),
              .pointers = {PointerField{.ptr_offset = TIO_OFF(kvm_device_attr, addr),
                                        .fixed_len = 4,
                                        .dir = Direction::In,
                                        .holds_fd = true}}},
    IoctlDesc{.request = KVM_HAS_DEVICE_ATTR, .name = "KVM_HAS_DEVICE_ATTR", .min_size = sz<kvm_device_attr>(),
              .our_size = sz<kvm_device_attr>()},
};
// clang-format on
#undef TIO_OFF

std::uint32_t readU32(std::span<const std::uint8_t> s, std::uint32_t off) {
    std::uint32_t v = 0;
    std::memcpy(&v, s.data() + off, sizeof v);
    return v;
}

}  // namespace

const IoctlDesc* findIoctl(unsigned long request) noexcept {
    for (const auto& d : kTable)
        if (d.request == request) return &d;
    return nullptr;
}

const IoctlDesc* findIoctl(std::string_view name) noexcept {
    for (const auto& d : kTable)
        if (d.name == name) return &d;
    return nullptr;
}

std::span<const IoctlDesc> allIoctls() noexcept { return kTable; }

std::optional<std::uint32_t> pointerLength(const PointerField& p, std::span<const std::uint8_t> s) {
    if (p.ptr_offset == kNoField) return std::uint32_t{0};
    if (p.flag_offset != kNoField && (p.flag_offset + 4U > s.size() || (readU32(s, p.flag_offset) & p.flag_mask) == 0))
        return std::uint32_t{0};
    if (p.len_offset == kNoField) return p.fixed_len;
    if (p.len_offset + 4U > s.size()) return std::nullopt;
    const std::uint64_t len = std::uint64_t{readU32(s, p.len_offset)} * p.elem_size;
    if (len > kMaxPointerBuffer) return std::nullopt;
    return static_cast<std::uint32_t>(len);
}

bool fdFieldPresent(const FdField& f, std::span<const std::uint8_t> s) {
    if (f.offset == kNoField || f.offset + 4U > s.size()) return false;
    if (f.flag_offset == kNoField) return true;
    if (f.flag_offset + 4U > s.size()) return false;
    return (readU32(s, f.flag_offset) & f.flag_mask) != 0;
}

}  // namespace tio::kernel
