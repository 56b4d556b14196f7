#include "kernel/ioctl_table.hpp"

#include <gtest/gtest.h>

#include <set>

#include "kernel/uapi/ioctl_encoding.hpp"
#include "kernel/uapi/iommufd.hpp"
#include "kernel/uapi/kvm.hpp"

namespace tio::kernel {
namespace {

TEST(IoctlTable, EveryEntryIsSelfConsistent) {
    std::set<unsigned long> requests;
    std::set<std::string_view> names;
    for (const auto& d : allIoctls()) {
        SCOPED_TRACE(std::string(d.name));
        EXPECT_TRUE(requests.insert(d.request).second) << "duplicate request number";
        EXPECT_TRUE(names.insert(d.name).second) << "duplicate name";
        EXPECT_EQ(findIoctl(d.name), &d);
        EXPECT_EQ(findIoctl(d.request), &d);
        if (d.kind != ArgKind::Struct) continue;
        EXPECT_LE(d.min_size, d.our_size);
        EXPECT_GT(d.our_size, 0U);
        // KVM encodes the size in the request; iommufd/VFIO carry it in the struct.
        EXPECT_EQ(uapi::iocSize(d.request), d.size_in_struct ? 0U : d.our_size);
        for (const auto& p : d.pointers) {
            if (p.ptr_offset == kNoField) continue;
            EXPECT_LE(p.ptr_offset + 8U, d.our_size);
            if (p.len_offset != kNoField) {
                EXPECT_LE(p.len_offset + 4U, d.our_size);
            }
        }
        if (d.fd_in.offset != kNoField) {
            EXPECT_LE(d.fd_in.offset + 4U, d.our_size);
        }
    }
}

TEST(IoctlTable, PointerLengthIsBoundedAndCountScaled) {
    uapi::iommu_ioas_iova_ranges q{};
    q.size = sizeof q;
    q.num_iovas = 3;
    const auto* d = findIoctl(uapi::IOMMU_IOAS_IOVA_RANGES);
    ASSERT_NE(d, nullptr);
    std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(&q), sizeof q);
    EXPECT_EQ(pointerLength(d->pointers[0], bytes), 3U * sizeof(uapi::iommu_iova_range));
    q.num_iovas = 0xffffffffU;  // 64 GiB of ranges: refused, never allocated
    EXPECT_FALSE(pointerLength(d->pointers[0], bytes));
}

TEST(IoctlTable, ConditionalFdField) {
    const auto* d = findIoctl(uapi::KVM_SET_USER_MEMORY_REGION2);
    ASSERT_NE(d, nullptr);
    uapi::kvm_userspace_memory_region2 m{};
    std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(&m), sizeof m);
    EXPECT_FALSE(fdFieldPresent(d->fd_in, bytes));
    m.flags = uapi::KVM_MEM_GUEST_MEMFD;
    EXPECT_TRUE(fdFieldPresent(d->fd_in, bytes));
}

}  // namespace
}  // namespace tio::kernel
