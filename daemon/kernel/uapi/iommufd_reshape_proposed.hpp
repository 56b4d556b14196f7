#pragma once
// PROPOSED uAPI, NOT IN ANY KERNEL: hitless restructuring of an IOAS, the iommufd
// face of the generic IOMMU page table's atomic split/merge (kernel-uapi.md 5.2 last
// item and 1.4 "until a 'cut' operation exists"; section 8 lists it as unverified).
// tio-manager needs it to keep huge IOPTEs and still convert 4 KiB: without it the
// only safe layout is QEMU's one-area-per-4-KiB (kernel-uapi.md 6.3).
//
// One ioctl, three operations, each hitless: no address that stays mapped is ever
// unmapped, not even for the length of an IOTLB flush (a huge entry is replaced by an
// equivalent table, or a full table by an equivalent huge entry, then flushed).
//  - SPLIT  (iova): the area containing iova (not at its start) becomes two areas
//           meeting at iova, so a later IOMMU_IOAS_UNMAP can take either whole.
//  - JOIN   (iova): the two areas meeting at iova, of the same file, contiguous in it
//           and with the same flags, become one; the page table may then use larger
//           entries across iova.
//  - LIMIT  (iova, length, max_pgsize): no IOPTE mapping [iova, iova+length) may be
//           larger than max_pgsize (0 = the page table's largest), and no IOPTE crosses
//           either end of the range. Applies to what is mapped now and later (it is a
//           property of the IOVA range, like IOMMU_IOAS_ALLOW_IOVAS): AMD's RMP rule.
// The number is far from the upstream sequence (0x80..0x96) so that a real kernel
// answers ENOTTY, which features.cpp reads as "not supported".
#include <cstddef>
#include <cstdint>

#include "kernel/uapi/iommufd.hpp"

namespace tio::uapi {

inline constexpr unsigned long IOMMU_IOAS_RESHAPE = io(kIommufdType, 0xc0);
static_assert(IOMMU_IOAS_RESHAPE == 0x3BC0);

enum iommu_ioas_reshape_op : std::uint32_t {
    IOMMU_IOAS_RESHAPE_SPLIT = 1,
    IOMMU_IOAS_RESHAPE_JOIN = 2,
    IOMMU_IOAS_RESHAPE_LIMIT = 3,
};

struct iommu_ioas_reshape {
    std::uint32_t size;
    std::uint32_t flags;  // must be 0 (EOPNOTSUPP)
    std::uint32_t ioas_id;
    std::uint32_t op;
    std::uint64_t iova;
    std::uint64_t length;      // LIMIT only, else 0
    std::uint64_t max_pgsize;  // LIMIT only: 0, or a page size the page table supports
};
static_assert(sizeof(iommu_ioas_reshape) == 40 && offsetof(iommu_ioas_reshape, flags) == 4 &&
              offsetof(iommu_ioas_reshape, ioas_id) == 8 && offsetof(iommu_ioas_reshape, op) == 12 &&
              offsetof(iommu_ioas_reshape, iova) == 16 && offsetof(iommu_ioas_reshape, length) == 24 &&
              offsetof(iommu_ioas_reshape, max_pgsize) == 32);

}  // namespace tio::uapi
