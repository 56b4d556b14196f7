#pragma once
// The per-platform rules for where the IOMMU maps guest memory (architecture.md
// section 6, kernel-uapi.md section 5): what a page's state calls for on the shared
// (host-managed) page table. The planner derives every IOMMU operation from this.
#include <cstdint>
#include <string_view>

#include "common/platform.hpp"
#include "core/lifecycle.hpp"

namespace tio::core {

// A page's state as the daemon records it. `revoked`: the page's IOMMU mapping was
// taken away by PunchHole and stays away until the page is converted again.
struct PageState {
    MemoryState attr = MemoryState::Shared;
    bool revoked = false;
    bool operator==(const PageState&) const = default;
};

struct IommuView {
    bool mapped = false;
    std::uint64_t iova_bit = 0;    // OR-ed into the GPA to get the IOVA
    std::uint64_t max_pgsize = 0;  // largest IOPTE allowed, 0 = the page table's largest
    bool operator==(const IommuView&) const = default;
};

// TDX's shared GPA bit and CCA's unprotected-IPA bit for a 48-bit guest address
// width (kernel-uapi.md 5.1 and 5.3; wider guests move it, one constant here).
inline constexpr std::uint64_t kSharedAliasBit = 1ULL << 47U;
inline constexpr std::uint64_t kRmpLargePage = 2ULL << 20U;

// The guest physical addresses the IOMMU layout can express: below the shared alias
// bit on TDX and CCA (a GPA with it set would be its own shared view), below the
// 48-bit guest address width on SNP. Memory beyond is refused before any kernel call.
[[nodiscard]] constexpr std::uint64_t guestAddressLimit(Platform p) {
    return p == Platform::Snp ? 1ULL << 48U : kSharedAliasBit;
}

// How the kernel converts a page (architecture.md section 6): in place, on one
// guest_memfd backing (the attribute on the guest_memfd, set by the daemon), or
// with a separate shared backing (a memfd; the VM-scoped attribute, set by the VMM).
enum class MemoryModel : std::uint8_t { InPlace, Separate };
[[nodiscard]] constexpr std::string_view toString(MemoryModel m) {
    return m == MemoryModel::InPlace ? "in-place" : "separate";
}

// What a region's IOMMU mappings may reach on this kernel: the platform's rules,
// less what the kernel cannot map. Shared pages need a file the IOMMU can map
// (the separate model's memfd; guest_memfd by file where the kernel offers it);
// private pages in the IOMMU (SNP) need guest_memfd by file.
struct MappingRules {
    Platform platform = Platform::Tdx;
    bool shared_dma = true;
    bool private_dma = true;
    // Without hitless split and merge (IOMMU_IOAS_RESHAPE), an area that a change
    // cuts could only be unmapped whole, taking its neighbours' DMA with it; so every
    // area is one 4 KiB page, as QEMU maps guest_memfd-backed RAM, and no change ever
    // cuts one (at the cost of an area and a map call per page).
    bool page_areas = false;
};

inline constexpr std::uint64_t kPageAreaSize = 4096;

// TDX: shared pages at their shared-bit alias; private ones never (the secure path
//      reuses the S-EPT, and a shared IOPTE on a private page is a machine check).
// SNP: both at their GPA, private ones in IOPTEs no larger than a 2 MiB RMP entry
//      (smaller still where the 2 MiB block is mixed: alignment to the private
//      run's edges gives that, as no IOPTE crosses a page-size-limit boundary).
// CCA: shared pages at the unprotected alias only.
[[nodiscard]] constexpr IommuView iommuView(const MappingRules& rules, PageState s) {
    const Platform p = rules.platform;
    if (s.revoked) return {};
    if (s.attr == MemoryState::Shared) {
        if (!rules.shared_dma) return {};
        return {.mapped = true, .iova_bit = p == Platform::Snp ? 0 : kSharedAliasBit};
    }
    if (p == Platform::Snp && rules.private_dma) return {.mapped = true, .iova_bit = 0, .max_pgsize = kRmpLargePage};
    return {};
}

// Whether any state limits IOPTE sizes (then every map sets its limit first).
[[nodiscard]] constexpr bool usesPageSizeLimits(const MappingRules& rules) {
    return rules.platform == Platform::Snp && rules.private_dma && !rules.page_areas;
}

}  // namespace tio::core
