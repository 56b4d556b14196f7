#pragma once
// Own copy of the KVM uAPI parts tio-manager uses. The 6.1 headers on the build hosts
// lack guest_memfd, USER_MEMORY2 and MEMORY_ATTRIBUTES (toolchain.md 10b); values
// from kernel-uapi.md section 3. KVM_CREATE_GUEST_MEMFD was checked against 6.18.
#include <cstddef>
#include <cstdint>

#include "kernel/uapi/ioctl_encoding.hpp"

namespace tio::uapi {

inline constexpr std::uint32_t kKvmType = 0xAE;
inline constexpr int kKvmApiVersion = 12;

struct kvm_userspace_memory_region2 {
    std::uint32_t slot;
    std::uint32_t flags;
    std::uint64_t guest_phys_addr;
    std::uint64_t memory_size;
    std::uint64_t userspace_addr;
    std::uint64_t guest_memfd_offset;
    std::uint32_t guest_memfd;
    std::uint32_t pad1;
    std::uint64_t pad2[14];
};
static_assert(sizeof(kvm_userspace_memory_region2) == 160 &&
              offsetof(kvm_userspace_memory_region2, guest_phys_addr) == 8 &&
              offsetof(kvm_userspace_memory_region2, userspace_addr) == 24 &&
              offsetof(kvm_userspace_memory_region2, guest_memfd_offset) == 32 &&
              offsetof(kvm_userspace_memory_region2, guest_memfd) == 40 &&
              offsetof(kvm_userspace_memory_region2, pad2) == 48);

struct kvm_memory_attributes {
    std::uint64_t address;
    std::uint64_t size;
    std::uint64_t attributes;
    std::uint64_t flags;
};
static_assert(sizeof(kvm_memory_attributes) == 32 && offsetof(kvm_memory_attributes, attributes) == 16);

// In-place conversion (kernel-as-it-is.md section 3: "guest_memfd: In-place
// conversion support" v8..v13, queued for 7.4): issued on the guest_memfd fd,
// offset-based; on EAGAIN, error_offset names where the kernel stopped.
struct kvm_memory_attributes2 {
    std::uint64_t offset;
    std::uint64_t size;
    std::uint64_t attributes;
    std::uint64_t flags;
    std::uint64_t error_offset;
    std::uint64_t reserved[11];
};
static_assert(sizeof(kvm_memory_attributes2) == 128 && offsetof(kvm_memory_attributes2, size) == 8 &&
              offsetof(kvm_memory_attributes2, attributes) == 16 && offsetof(kvm_memory_attributes2, flags) == 24 &&
              offsetof(kvm_memory_attributes2, error_offset) == 32 && offsetof(kvm_memory_attributes2, reserved) == 40);

struct kvm_create_guest_memfd {
    std::uint64_t size;
    std::uint64_t flags;
    std::uint64_t reserved[6];
};
static_assert(sizeof(kvm_create_guest_memfd) == 64 && offsetof(kvm_create_guest_memfd, flags) == 8 &&
              offsetof(kvm_create_guest_memfd, reserved) == 16);

struct kvm_create_device {
    std::uint32_t type;
    std::uint32_t fd;  // out
    std::uint32_t flags;
};
static_assert(sizeof(kvm_create_device) == 12 && offsetof(kvm_create_device, fd) == 4);

struct kvm_device_attr {
    std::uint32_t flags;
    std::uint32_t group;
    std::uint64_t attr;
    std::uint64_t addr;  // user pointer; for KVM_DEV_VFIO_FILE a pointer to an int32 fd
};
static_assert(sizeof(kvm_device_attr) == 24 && offsetof(kvm_device_attr, attr) == 8 &&
              offsetof(kvm_device_attr, addr) == 16);

inline constexpr unsigned long KVM_GET_API_VERSION = io(kKvmType, 0x00);
inline constexpr unsigned long KVM_CREATE_VM = io(kKvmType, 0x01);
inline constexpr unsigned long KVM_CHECK_EXTENSION = io(kKvmType, 0x03);
inline constexpr unsigned long KVM_CREATE_VCPU = io(kKvmType, 0x41);
inline constexpr unsigned long KVM_SET_USER_MEMORY_REGION2 = iow<kvm_userspace_memory_region2>(kKvmType, 0x49);
inline constexpr unsigned long KVM_SET_MEMORY_ATTRIBUTES = iow<kvm_memory_attributes>(kKvmType, 0xd2);
inline constexpr unsigned long KVM_SET_MEMORY_ATTRIBUTES2 = iowr<kvm_memory_attributes2>(kKvmType, 0xd2);
inline constexpr unsigned long KVM_CREATE_GUEST_MEMFD = iowr<kvm_create_guest_memfd>(kKvmType, 0xd4);
inline constexpr unsigned long KVM_CREATE_DEVICE = iowr<kvm_create_device>(kKvmType, 0xe0);
inline constexpr unsigned long KVM_SET_DEVICE_ATTR = iow<kvm_device_attr>(kKvmType, 0xe1);
inline constexpr unsigned long KVM_HAS_DEVICE_ATTR = iow<kvm_device_attr>(kKvmType, 0xe3);
static_assert(KVM_CREATE_VM == 0xAE01 && KVM_CHECK_EXTENSION == 0xAE03 && KVM_CREATE_VCPU == 0xAE41);
static_assert(KVM_SET_MEMORY_ATTRIBUTES2 == 0xC080AED2);
static_assert(KVM_SET_USER_MEMORY_REGION2 == 0x40A0AE49 && KVM_SET_MEMORY_ATTRIBUTES == 0x4020AED2);
static_assert(KVM_CREATE_GUEST_MEMFD == 0xC040AED4 && KVM_CREATE_DEVICE == 0xC00CAEE0);
static_assert(KVM_SET_DEVICE_ATTR == 0x4018AEE1 && KVM_HAS_DEVICE_ATTR == 0x4018AEE3);

// x86 VM types (asm/kvm.h); pre-merge RFC numbers differ, only these are ABI.
inline constexpr std::uint32_t KVM_X86_DEFAULT_VM = 0;
inline constexpr std::uint32_t KVM_X86_SW_PROTECTED_VM = 1;
inline constexpr std::uint32_t KVM_X86_SNP_VM = 4;
inline constexpr std::uint32_t KVM_X86_TDX_VM = 5;

inline constexpr unsigned long KVM_CAP_DEVICE_CTRL = 89;
inline constexpr unsigned long KVM_CAP_USER_MEMORY2 = 231;
inline constexpr unsigned long KVM_CAP_MEMORY_ATTRIBUTES = 233;
inline constexpr unsigned long KVM_CAP_GUEST_MEMFD = 234;
inline constexpr unsigned long KVM_CAP_VM_TYPES = 235;
inline constexpr unsigned long KVM_CAP_GUEST_MEMFD_FLAGS = 244;  // was KVM_CAP_GUEST_MEMFD_MMAP before release

inline constexpr std::uint64_t GUEST_MEMFD_FLAG_MMAP = 1ULL << 0U;
inline constexpr std::uint64_t GUEST_MEMFD_FLAG_INIT_SHARED = 1ULL << 1U;

inline constexpr std::uint32_t KVM_MEM_GUEST_MEMFD = 1U << 2U;
inline constexpr std::uint64_t KVM_MEMORY_ATTRIBUTE_PRIVATE = 1ULL << 3U;

inline constexpr std::uint32_t KVM_CREATE_DEVICE_TEST = 1;
inline constexpr std::uint32_t KVM_DEV_TYPE_VFIO = 4;
inline constexpr std::uint32_t KVM_DEV_VFIO_FILE = 1;
inline constexpr std::uint64_t KVM_DEV_VFIO_FILE_ADD = 1;
inline constexpr std::uint64_t KVM_DEV_VFIO_FILE_DEL = 2;

// fallocate(2) modes used on guest_memfd.
inline constexpr int kFallocKeepSize = 0x01;
inline constexpr int kFallocPunchHole = 0x02;

}  // namespace tio::uapi
