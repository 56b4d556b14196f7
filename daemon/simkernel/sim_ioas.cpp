// Simulated /dev/iommu, the IOAS (io_pagetable.c): areas mapped from files, no
// partial unmap, the aperture and its reserved MSI window, the proposed hitless
// RESHAPE, and every HWPT's real page table (io_page_table.hpp) kept in line with its
// IOAS's areas and page-size limits; revocation when a guest_memfd is truncated.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>

#include "common/checked_math.hpp"
#include "kernel/iommufd.hpp"
#include "kernel/uapi/iommufd.hpp"
#include "kernel/uapi/iommufd_reshape_proposed.hpp"
#include "kernel/uapi/iommufd_tsm_proposed.hpp"
#include "simkernel/sim_files.hpp"
#include "simkernel/sim_gup.hpp"

namespace tio::sim {

using namespace tio::uapi;

namespace {

// The simulated IOMMU aperture (52-bit, room for TDX's shared bit 51) minus the x86
// MSI window, which iommufd reports as a reserved region.
constexpr std::uint64_t kApertureLast = (1ULL << 52U) - 1;
constexpr std::uint64_t kMsiStart = 0xfee00000ULL;
constexpr std::uint64_t kMsiLast = 0xfeefffffULL;

}  // namespace

IoPageTable::Segments IommufdFile::layout(const IommuObj& ioas, std::uint64_t s, std::uint64_t e) const {
    IoPageTable::Segments out;
    auto it = ioas.areas.upper_bound(s);
    if (it != ioas.areas.begin() && std::prev(it)->first + std::prev(it)->second.length > s) --it;
    for (; it != ioas.areas.end() && it->first < e; ++it) {
        const std::uint64_t as = it->first;
        const std::uint64_t ae = as + it->second.length;
        const IoArea& area = it->second;
        const std::uint64_t delta = area.start - as;
        // An area is cut into pieces where the page-size limit changes.
        auto piece = [&](std::uint64_t ps, std::uint64_t pe, unsigned limit) {
            if (pe <= s || ps >= e) return;
            out.emplace(ps, Segment{.end = pe,
                                    .file = area.file_key,
                                    .file_delta = delta,
                                    .writeable = area.writeable,
                                    .max_shift = usableShift(delta, limit)});
        };
        // Only the pieces overlapping [s, e): from the piece containing s to the one
        // containing e - 1 (work per change, not per area).
        const std::uint64_t from = std::max(as, ioas.limits.pieceStart(std::max(as, s)));
        const std::uint64_t to = std::min(ae, ioas.limits.pieceEnd(std::min(ae, e) - 1));
        std::uint64_t at = from;
        ioas.limits.forEach(from, to, [&](std::uint64_t ls, std::uint64_t le, unsigned shift) {
            if (at < ls) piece(at, ls, kShift1G);
            piece(ls, le, shift);
            at = le;
        });
        if (at < to) piece(at, to, kShift1G);
    }
    return out;
}

void IommufdFile::sync(std::uint32_t ioas_id, std::uint64_t s, std::uint64_t e, bool restructure) {
    const IommuObj& ioas = objects_.at(ioas_id);
    for (auto& [id, hwpt] : objects_) {
        if (hwpt.type != ObjType::HwptPaging || hwpt.ioas != ioas_id) continue;
        // Widen until neither the old table nor the new layout has a segment crossing an end.
        std::uint64_t ws = s;
        std::uint64_t we = e;
        IoPageTable::Segments fresh;
        for (;;) {
            fresh = layout(ioas, ws, we);
            std::uint64_t ns = ws;
            std::uint64_t ne = we;
            if (!fresh.empty()) {
                ns = std::min(ns, fresh.begin()->first);
                ne = std::max(ne, std::prev(fresh.end())->second.end);
            }
            std::tie(ns, ne) = hwpt.table.widen(ns, ne);
            if (ns == ws && ne == we) break;
            ws = ns;
            we = ne;
        }
        const TableChange ch = hwpt.table.replace(ws, we, fresh, restructure);
        kernel_.count("iopte_map", ch.added.total() * (restructure ? 0 : 1));
        kernel_.count("iopte_unmap", ch.removed.total() * (restructure ? 0 : 1));
        kernel_.count("iopte_split", ch.splits);
        kernel_.count("iopte_merge", ch.merges);
        kernel_.count("pages_unmapped", ch.pages_unmapped);
        // The simulator's own consistency: a hitless operation that unmapped or
        // retargeted a page would be a bug here, and the tests look at this counter.
        if (ch.retargeted_pages != 0 || (restructure && (ch.pages_mapped != 0 || ch.pages_unmapped != 0))) {
            kernel_.count("unsafe_replacements");
        }
        if (ch.pages_unmapped != 0 || ch.splits != 0 || ch.merges != 0) kernel_.count("iotlb_flush");
    }
}

void IommufdFile::dropArea(IoArea& area) {
    if (area.gmem) area.gmem->pin(area.pinned_by_address, false);
}

long IommufdFile::iovaRanges(IoctlCall& c) {
    auto q = c.get<iommu_ioas_iova_ranges>();
    if (q.__reserved != 0) return -EOPNOTSUPP;
    if (find(q.ioas_id, ObjType::Ioas) == nullptr) return -ENOENT;
    const iommu_iova_range ranges[2] = {{0, kMsiStart - 1}, {kMsiLast + 1, kApertureLast}};
    const std::uint32_t capacity = q.num_iovas;
    q.num_iovas = 2;
    q.out_iova_alignment = kPageSize;
    c.put(q);
    if (capacity < 2) return -EMSGSIZE;
    std::memcpy(c.bufs[0].data(), ranges, sizeof ranges);
    return 0;
}

long IommufdFile::mapFile(IoctlCall& c) {
    auto m = c.get<iommu_ioas_map_file>();
    constexpr std::uint32_t kKnown = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
    if ((m.flags & ~kKnown) != 0) return -EOPNOTSUPP;
    if ((m.flags & (IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE)) == 0 || m.length == 0) return -EINVAL;
    const auto file_end = checkedEnd(m.start, m.length);
    if (!file_end) return -EOVERFLOW;
    IommuObj* ioas = find(m.ioas_id, ObjType::Ioas);
    if (ioas == nullptr) return -ENOENT;
    if (c.fds.empty()) return -EBADF;
    if (!pageAligned(m.start) || !pageAligned(m.length)) return -EINVAL;

    IoArea area{.length = m.length, .start = m.start, .writeable = (m.flags & IOMMU_IOAS_MAP_WRITEABLE) != 0};
    if (auto* gmem = dynamic_cast<GuestMemfdFile*>(kernel_.resolve(c.fds.front().get()))) {
        // guest_memfd by file + offset is an RFC (kernel-as-it-is.md section 4): merged
        // iommufd_ioas_map_file refuses every file that is not shmem, hugetlbfs or a dma-buf.
        if (!kernel_.proposedSeries()) return -EINVAL;
        if (*file_end > gmem->size_) return -EINVAL;
        area.gmem = FileRef<GuestMemfdFile>(gmem);
        area.file_key = reinterpret_cast<std::uintptr_t>(gmem);
    } else if (kernel_.resolve(c.fds.front().get()) != nullptr) {
        return -EINVAL;  // another simulator file (a VM, an iommufd...): not mappable memory
    } else {
        // A real memfd (shmem): the kind upstream MAP_FILE accepts. Seals prove it is one.
        struct stat st {};
        if (::fstat(c.fds.front().get(), &st) < 0 || !S_ISREG(st.st_mode) ||
            ::fcntl(c.fds.front().get(), F_GET_SEALS) < 0) {
            return -EINVAL;
        }
        if (static_cast<std::uint64_t>(st.st_size) < *file_end) return -EINVAL;
        area.host_file = std::move(c.fds.front());
        area.file_key = hostFileKey(st.st_ino);
    }

    const long r = insertArea(*ioas, m.ioas_id, m.flags, m.iova, std::move(area));
    if (r == 0) c.put(m);
    return r;
}

long IommufdFile::mapAddress(IoctlCall& c) {
    auto m = c.get<iommu_ioas_map>();
    constexpr std::uint32_t kKnown = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
    if ((m.flags & ~kKnown) != 0 || m.__reserved != 0) return -EOPNOTSUPP;
    if ((m.flags & (IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE)) == 0 || m.length == 0) return -EINVAL;
    if (!checkedEnd(m.user_va, m.length)) return -EOVERFLOW;
    IommuObj* ioas = find(m.ioas_id, ObjType::Ioas);
    if (ioas == nullptr) return -ENOENT;
    if (!pageAligned(m.user_va) || !pageAligned(m.length)) return -EINVAL;
    // GUP on the caller's own address space: what it mapped there, not its word.
    const auto pages = lookupUserPages(c.caller, m.user_va, m.length);
    if (!pages) return -EFAULT;
    GuestMemfdFile* gmem = kernel_.guestMemfdBackedBy(pages->dev, pages->ino);
    // Only guest_memfd pages are modelled; other user memory has no guest meaning here.
    if (gmem == nullptr || !checkedEnd(pages->offset, m.length) || pages->offset + m.length > gmem->size_) {
        return -EFAULT;
    }
    IoArea area{.length = m.length,
                .start = pages->offset,
                .writeable = (m.flags & IOMMU_IOAS_MAP_WRITEABLE) != 0,
                .file_key = reinterpret_cast<std::uintptr_t>(gmem),
                .gmem = FileRef<GuestMemfdFile>(gmem),
                .pinned_by_address = true};
    const long r = insertArea(*ioas, m.ioas_id, m.flags, m.iova, std::move(area));
    if (r == 0) c.put(m);
    return r;
}

long IommufdFile::insertArea(IommuObj& ioas, std::uint32_t ioas_id, std::uint32_t flags, std::uint64_t& iova,
                             IoArea area) {
    if ((flags & IOMMU_IOAS_MAP_FIXED_IOVA) == 0) {
        // Automatic IOVA: the lowest page-aligned gap after the last area.
        iova = ioas.areas.empty() ? kPageSize : ioas.areas.rbegin()->first + ioas.areas.rbegin()->second.length;
    }
    const auto end = checkedEnd(iova, area.length);
    if (!end) return -EOVERFLOW;
    if (!pageAligned(iova)) return -EINVAL;
    if (*end - 1 > kApertureLast || (iova <= kMsiLast && *end - 1 >= kMsiStart)) return -EADDRINUSE;
    auto next = ioas.areas.lower_bound(iova);
    if (next != ioas.areas.end() && next->first < *end) return -EEXIST;
    if (next != ioas.areas.begin()) {
        auto prev = std::prev(next);
        if (prev->first + prev->second.length > iova) return -EEXIST;
    }
    if (area.gmem) {
        area.gmem->pin(area.pinned_by_address, true);
        area.gmem->punched_.erase(area.start, area.start + area.length);  // pinning allocates the pages again
    }
    ioas.areas.emplace(iova, std::move(area));
    sync(ioas_id, iova, *end, false);
    return 0;
}

std::optional<std::uint64_t> IommufdFile::firstPinnedByAddress(const GuestMemfdFile* gmem, std::uint64_t start,
                                                               std::uint64_t end) const {
    std::optional<std::uint64_t> first;
    for (const auto& [id, o] : objects_) {
        for (const auto& [iova, a] : o.areas) {
            if (!a.pinned_by_address || a.gmem.get() != gmem) continue;
            const std::uint64_t s = std::max(start, a.start);
            if (s < std::min(end, a.start + a.length) && (!first || s < *first)) first = s;
        }
    }
    return first;
}

long IommufdFile::unmap(IoctlCall& c) {
    auto u = c.get<iommu_ioas_unmap>();
    IommuObj* ioas = find(u.ioas_id, ObjType::Ioas);
    if (ioas == nullptr) return -ENOENT;
    // iova 0, length U64_MAX means everything; otherwise an overflow is EOVERFLOW.
    std::uint64_t last = UINT64_MAX;
    if (!(u.iova == 0 && u.length == UINT64_MAX)) {
        const auto end = checkedEnd(u.iova, u.length);
        if (u.length == 0) return -EINVAL;
        if (!end) return -EOVERFLOW;
        last = *end - 1;
    }
    // The range must be a superset of whole areas: an area crossing either edge is EINVAL.
    std::uint64_t unmapped = 0;
    auto first = ioas->areas.upper_bound(u.iova);
    if (first != ioas->areas.begin()) --first;
    for (auto it = first; it != ioas->areas.end() && it->first <= last; ++it) {
        const std::uint64_t alast = it->first + it->second.length - 1;
        if (alast < u.iova) continue;
        if (it->first < u.iova || alast > last) return -EINVAL;
        unmapped += it->second.length;
    }
    if (unmapped == 0) return -ENOENT;
    for (auto it = ioas->areas.lower_bound(u.iova); it != ioas->areas.end() && it->first <= last;) {
        dropArea(it->second);
        it = ioas->areas.erase(it);
    }
    sync(u.ioas_id, u.iova, last == kEverything ? kEverything : last + 1, false);
    u.length = unmapped;
    c.put(u);
    return 0;
}

const IoPageTable* IommufdFile::tableOf(std::uint32_t dev_id) const {
    const IommuObj* dev = find(dev_id, ObjType::Device);
    if (dev == nullptr || dev->hwpt == 0) return nullptr;
    return &objects_.at(dev->hwpt).table;
}

std::uint64_t IommufdFile::areaCount(std::uint32_t dev_id) const {
    const IommuObj* dev = find(dev_id, ObjType::Device);
    if (dev == nullptr || dev->hwpt == 0) return 0;
    return objects_.at(objects_.at(dev->hwpt).ioas).areas.size();
}

const IoArea* IommufdFile::areaAt(std::uint32_t dev_id, std::uint64_t iova) const {
    const IommuObj* dev = find(dev_id, ObjType::Device);
    if (dev == nullptr || dev->hwpt == 0) return nullptr;
    const IommuObj& ioas = objects_.at(objects_.at(dev->hwpt).ioas);
    auto it = ioas.areas.upper_bound(iova);
    if (it == ioas.areas.begin()) return nullptr;
    --it;
    return iova < it->first + it->second.length ? &it->second : nullptr;
}

std::uint64_t IommufdFile::revokeAreasOf(const GuestMemfdFile* gmem, std::uint64_t start, std::uint64_t end) {
    std::uint64_t revoked = 0;
    for (auto& [id, o] : objects_) {
        if (o.type != ObjType::Ioas) continue;
        for (auto it = o.areas.begin(); it != o.areas.end();) {
            const IoArea& a = it->second;
            if (a.gmem.get() != gmem || a.start >= end || a.start + a.length <= start) {
                ++it;
                continue;
            }
            const std::uint64_t iova = it->first;
            const std::uint64_t length = a.length;
            dropArea(it->second);
            it = o.areas.erase(it);
            sync(id, iova, iova + length, false);
            ++revoked;
        }
    }
    return revoked;
}

long IommufdFile::reshape(IoctlCall& c) {
    const auto r = c.get<iommu_ioas_reshape>();
    if (r.flags != 0) return -EOPNOTSUPP;
    IommuObj* ioas = find(r.ioas_id, ObjType::Ioas);
    if (ioas == nullptr) return -ENOENT;
    if (!pageAligned(r.iova)) return -EINVAL;
    auto& areas = ioas->areas;
    if (r.op == IOMMU_IOAS_RESHAPE_SPLIT || r.op == IOMMU_IOAS_RESHAPE_JOIN) {
        if (r.length != 0 || r.max_pgsize != 0) return -EINVAL;
        auto next = areas.lower_bound(r.iova);  // the area starting at iova, if any
        const bool at_boundary = next != areas.end() && next->first == r.iova;
        auto prev = next == areas.begin() ? areas.end() : std::prev(next);
        const bool prev_covers = prev != areas.end() && prev->first + prev->second.length > r.iova;
        const bool prev_touches = prev != areas.end() && prev->first + prev->second.length == r.iova;
        if (r.op == IOMMU_IOAS_RESHAPE_SPLIT) {
            if (at_boundary) return 0;  // already an area boundary
            if (!prev_covers) return -ENOENT;
            IoArea& left = prev->second;
            const std::uint64_t cut = r.iova - prev->first;
            IoArea right{.length = left.length - cut,
                         .start = left.start + cut,
                         .writeable = left.writeable,
                         .file_key = left.file_key,
                         .gmem = left.gmem,
                         .pinned_by_address = left.pinned_by_address};
            if (left.host_file) {
                right.host_file = UniqueFd(::fcntl(left.host_file.get(), F_DUPFD_CLOEXEC, 0));
                if (!right.host_file) return -EMFILE;
            }
            if (right.gmem) right.gmem->pin(right.pinned_by_address, true);
            const std::uint64_t whole_end = prev->first + left.length;
            left.length = cut;
            areas.emplace(r.iova, std::move(right));
            sync(r.ioas_id, prev->first, whole_end, true);
            return 0;
        }
        if (!at_boundary || !prev_touches) return -ENOENT;
        IoArea& left = prev->second;
        const IoArea& right = next->second;
        if (left.file_key != right.file_key || left.start + left.length != right.start ||
            left.writeable != right.writeable || left.pinned_by_address != right.pinned_by_address) {
            return -EINVAL;
        }
        const std::uint64_t whole_end = r.iova + right.length;
        left.length += right.length;
        dropArea(next->second);
        areas.erase(next);
        sync(r.ioas_id, prev->first, whole_end, true);
        return 0;
    }
    if (r.op == IOMMU_IOAS_RESHAPE_LIMIT) {
        const auto end = checkedEnd(r.iova, r.length);
        if (r.length == 0 || !end || !pageAligned(r.length)) return -EINVAL;
        if (*end - 1 > kApertureLast) return -EINVAL;
        if (r.max_pgsize == 0 || r.max_pgsize == (1ULL << kShift1G)) {
            ioas->limits.erase(r.iova, *end);  // the page table's largest is the default
        } else if (r.max_pgsize == (1ULL << kShift2M) || r.max_pgsize == (1ULL << kShift4K)) {
            ioas->limits.assign(r.iova, *end, static_cast<unsigned>(std::countr_zero(r.max_pgsize)));
        } else {
            return -EINVAL;
        }
        sync(r.ioas_id, r.iova, *end, true);
        return 0;
    }
    return -EOPNOTSUPP;
}

}  // namespace tio::sim
