// The platform models of tio-simkernel (issue 4; architecture.md section 6 and
// kernel-uapi.md section 5), used by Dma(), the DMA generator and Audit():
//  - tdx: IOVAs with the shared bit go through the host IOMMU page table; a DMA that
//    lands on a private page is a machine check (it poisons the guest). IOVAs without
//    it take the secure path (the TD's S-EPT): only a TDI in RUN, only private pages.
//  - snp: one page table maps shared and private pages at their GPAs and the RMP
//    arbitrates: RMP entries are 2 MiB where a whole 2 MiB block is private, else
//    4 KiB. An IOPTE over private memory that is larger than that RMP entry, or that
//    also covers pages of the other kind, is an rmp-fault; so is private access by a
//    device whose TDI is not in RUN.
//  - cca: shared pages are reached through the unprotected alias (top IPA bit) of the
//    page table; a wrong access is a granule-protection fault, contained. Private
//    pages through the realm's tables, TDI in RUN only.
// Deliberately written from those rules, not from the daemon's code: it is the oracle.
#include <algorithm>
#include <sstream>

#include "common/checked_math.hpp"
#include "simkernel/sim_files.hpp"

namespace tio::sim {
namespace {

constexpr std::uint64_t kTopAliasBit = 1ULL << 47U;  // GPAW/IPA width 48
constexpr std::uint64_t kRmpHuge = 1ULL << kShift2M;
constexpr std::size_t kMaxRecordedFaults = 1U << 16U;

// The RMP's verdict on an IOPTE mapping GPAs [gs, gs + size): fine over shared
// memory; over private memory only if it covers private pages alone and is no larger
// than their RMP entry (2 MiB where the whole 2 MiB block is private, else 4 KiB).
bool rmpAllows(const RangeMap<bool>& priv, std::uint64_t gs, std::uint64_t size) {
    if (!priv.intersects(gs, gs + size)) return true;
    if (!priv.covers(gs, gs + size, true)) return false;  // straddles
    const std::uint64_t block = gs & ~(kRmpHuge - 1);
    const std::uint64_t rmp = priv.covers(block, block + kRmpHuge, true) ? kRmpHuge : kPageSize;
    return size <= rmp;
}

struct PageClass {
    bool mapped = false;
    std::uint64_t iova_bit = 0;
    unsigned max_shift = kShift1G;
};

}  // namespace

IommufdFile* SimKernel::asIommufd(SimFile* f) { return dynamic_cast<IommufdFile*>(f); }

std::uint64_t SimKernel::sharedAliasBit() const { return platform_ == Platform::Snp ? 0 : kTopAliasBit; }

// One 4 KiB access at iova; sets `next` to where the next page of the DMA starts.
std::string SimKernel::accessPage(PciFunction& fn, std::uint64_t iova, bool write, std::uint64_t& next) {
    next = iova + kPageSize;
    IommufdFile& ictx = *fn.bound->iommufd();
    const std::uint32_t dev = fn.bound->devId();
    KvmVmFile* vm = fn.bound->kvm();
    const std::uint64_t alias = sharedAliasBit();
    const bool running = fn.tdi == TdiState::Run;
    auto fault = [&](const char* outcome, const char* counter) {
        count(counter);
        return std::string(outcome);
    };
    const char* wrong = platform_ == Platform::Cca ? "gpt-fault" : "iommu-fault";
    const char* wrong_counter = platform_ == Platform::Cca ? "gpt_faults" : "iommu_faults";

    if (alias != 0 && (iova & alias) == 0) {
        // The secure path: private memory of the TDI's own guest, nothing else.
        if (running && vm != nullptr && vm->isPrivate(iova)) return "ok";
        return fault(wrong, wrong_counter);
    }
    const IoPageTable* table = ictx.tableOf(dev);
    const auto leaf = table->leafAt(iova);
    if (!leaf || (write && !leaf->writeable)) return fault("iommu-fault", "iommu_faults");
    next = leaf->iova + leaf->size();
    const IoArea* area = ictx.areaAt(dev, iova);
    const GuestMemfdFile* gmem = area != nullptr ? area->gmem.get() : nullptr;
    if (gmem == nullptr || vm == nullptr) {
        // Plain host memory: the separate model's memfd, which no CoCo rule covers. A
        // GPA the VM made private behind the mapping leaves a stale mapping of a host
        // page, not a machine check (kernel-as-it-is.md section 3): counted.
        if (vm != nullptr && vm->isPrivate(iova & ~alias)) count("stale_shared_dma");
        return "ok";
    }
    const auto gpa = vm->gpaOf(gmem, leaf->file_offset + (iova - leaf->iova));
    const auto leaf_gpa = vm->gpaOf(gmem, leaf->file_offset);
    if (!gpa || !leaf_gpa) return "ok";  // file pages that are not guest memory
    const bool page_private = vm->isPrivate(*gpa);
    if (platform_ == Platform::Tdx) {
        if (!page_private) return "ok";
        if (!vm->poisoned_) count("guests_poisoned");
        vm->poisoned_ = true;
        return fault("machine-check", "machine_checks");
    }
    if (platform_ == Platform::Cca) return page_private ? fault("gpt-fault", "gpt_faults") : "ok";
    // SNP: the RMP checks the IOPTE against the memory under it.
    const RangeMap<bool>& priv = vm->privateRanges();
    if (!rmpAllows(priv, *leaf_gpa, leaf->size())) return fault("rmp-fault", "rmp_faults");
    if (page_private && !running) return fault("rmp-fault", "rmp_faults");
    return "ok";
}

std::string SimKernel::dma(const Bdf& bdf, std::uint64_t iova, std::uint64_t size, bool write) {
    PciFunction* fn = function(bdf);
    // A function nobody bound to an iommufd, or not attached, is DMA-blocked (VFIO's default).
    if (fn == nullptr || fn->bound == nullptr || fn->bound->iommufd() == nullptr ||
        fn->bound->iommufd()->tableOf(fn->bound->devId()) == nullptr) {
        count("dma_blocked");
        return "blocked";
    }
    const auto end = checkedEnd(iova, size);
    if (!end || size == 0) {
        count("iommu_faults");
        return "iommu-fault";
    }
    for (std::uint64_t a = iova - (iova % kPageSize); a < *end;) {
        std::uint64_t next = 0;
        std::string outcome = accessPage(*fn, a, write, next);
        if (outcome != "ok") return outcome;
        a = next;
    }
    count("dma_ok");
    return "ok";
}

void SimKernel::setDmaGenerator(const Bdf& bdf, unsigned per_call, std::uint64_t seed) {
    generator_.bdf = bdf;
    generator_.per_call = per_call;
    generator_.rng.seed(seed);
}

void SimKernel::runDmaGenerator() {
    if (generator_.per_call == 0 || generator_.running) return;
    PciFunction* fn = function(generator_.bdf);
    if (fn == nullptr || fn->bound == nullptr || fn->bound->kvm() == nullptr) return;
    const KvmVmFile& vm = *fn->bound->kvm();
    std::uint64_t total = 0;
    for (const auto& [id, slot] : vm.memslots())
        if (slot.gmem != nullptr) total += slot.size / kPageSize;
    if (total == 0) return;
    generator_.running = true;
    for (unsigned i = 0; i < generator_.per_call; ++i) {
        std::uint64_t pick = generator_.rng() % total;
        for (const auto& [id, slot] : vm.memslots()) {
            if (slot.gmem == nullptr) continue;
            if (pick >= slot.size / kPageSize) {
                pick -= slot.size / kPageSize;
                continue;
            }
            const std::uint64_t gpa = slot.gpa + pick * kPageSize;
            if (slot.gmem->punched_.find(slot.offset + pick * kPageSize)) break;  // discarded: no expectation
            const bool priv = vm.isPrivate(gpa);
            if (priv && fn->tdi != TdiState::Run) break;  // only a TDI in RUN may touch private memory
            // SNP's private DMA needs IOPTEs, which need guest_memfd by file: none here.
            if (priv && platform_ == Platform::Snp && !proposedSeries()) break;
            const std::uint64_t iova = priv ? gpa : gpa | sharedAliasBit();
            count("gen_dma");
            std::string outcome = dma(generator_.bdf, iova, kPageSize, (generator_.rng() & 1U) != 0);
            if (outcome != "ok") {
                count("gen_faults");
                if (dma_faults_.size() < kMaxRecordedFaults) dma_faults_.push_back({gpa, std::move(outcome)});
            }
            break;
        }
    }
    generator_.running = false;
}

std::vector<SimKernel::DmaFault> SimKernel::takeDmaFaults() { return std::exchange(dma_faults_, {}); }

std::map<std::string, std::uint64_t> SimKernel::audit(const Bdf& bdf) {
    std::map<std::string, std::uint64_t> out;
    for (const char* k : {"layout_mismatches", "private_pages_exposed", "rmp_violating_leaves", "stale_shared_pages",
                          "shared_pages_unreachable", "private_pages_unmapped", "excess_leaves", "ideal_leaves",
                          "actual_leaves", "areas", "unsafe_replacements", "machine_checks"}) {
        out[k] = 0;
    }
    out["unsafe_replacements"] = counters_["unsafe_replacements"];
    out["machine_checks"] = counters_["machine_checks"];
    PciFunction* fn = function(bdf);
    if (fn == nullptr || fn->bound == nullptr || fn->bound->kvm() == nullptr || fn->bound->iommufd() == nullptr) {
        return out;
    }
    const IoPageTable* table = fn->bound->iommufd()->tableOf(fn->bound->devId());
    if (table == nullptr) return out;
    const KvmVmFile& vm = *fn->bound->kvm();
    const RangeMap<bool>& priv = vm.privateRanges();
    const std::uint64_t alias = sharedAliasBit();
    out["areas"] = fn->bound->iommufd()->areaCount(fn->bound->devId());

    // What each page's state calls for. SNP's private pages are in the IOMMU only
    // where the kernel can map guest_memfd by file (the proposed series).
    const bool snp_private_dma = platform_ == Platform::Snp && proposedSeries();
    auto classOf = [&](bool is_private) {
        if (!is_private) return PageClass{.mapped = true, .iova_bit = alias, .max_shift = kShift1G};
        if (snp_private_dma) return PageClass{.mapped = true, .iova_bit = 0, .max_shift = kShift2M};
        return PageClass{};
    };
    // Which file a page of each kind is in, and the offset of the slot's first page
    // there: private pages are the guest_memfd's; shared ones too when converting in
    // place, else the separate backing's (none: shared pages reach no device).
    const bool separate = !inPlaceConversion();
    struct Backing {
        std::uintptr_t key = 0;
        std::uint64_t base = 0;
    };
    auto backingOf = [&](const KvmVmFile::Memslot& slot, bool is_private) {
        if (is_private || !separate) return Backing{reinterpret_cast<std::uintptr_t>(slot.gmem), slot.offset};
        return Backing{slot.shared_key, slot.shared_offset};
    };
    // The ideal table: per memslot, runs of equal class (punched pages unmapped).
    IoPageTable::Segments ideal;
    for (const auto& [id, slot] : vm.memslots()) {
        if (slot.gmem == nullptr) continue;
        const std::uint64_t slot_end = slot.gpa + slot.size;
        std::uint64_t run_start = slot.gpa;
        PageClass run_class{};
        bool run_private = false;
        bool run_open = false;
        auto flush = [&](std::uint64_t at) {
            const Backing b = backingOf(slot, run_private);
            if (run_open && run_class.mapped && at > run_start && b.key != 0) {
                const std::uint64_t iova = run_start | run_class.iova_bit;
                const std::uint64_t delta = (b.base + (run_start - slot.gpa)) - iova;
                ideal.emplace(iova, Segment{.end = iova + (at - run_start),
                                            .file = b.key,
                                            .file_delta = delta,
                                            .writeable = true,
                                            .max_shift = usableShift(delta, run_class.max_shift)});
            }
            run_open = false;
        };
        // Boundaries where either the private set or the punched set changes.
        std::vector<std::uint64_t> cuts{slot.gpa, slot_end};
        priv.forEach(slot.gpa, slot_end, [&](std::uint64_t s, std::uint64_t e, bool) {
            cuts.push_back(s);
            cuts.push_back(e);
        });
        slot.gmem->punched_.forEach(slot.offset, slot.offset + slot.size, [&](std::uint64_t s, std::uint64_t e, bool) {
            cuts.push_back(slot.gpa + (s - slot.offset));
            cuts.push_back(slot.gpa + (e - slot.offset));
        });
        std::sort(cuts.begin(), cuts.end());
        cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
        for (std::size_t i = 0; i + 1 < cuts.size(); ++i) {
            const std::uint64_t s = cuts[i];
            const bool punched = slot.gmem->punched_.find(slot.offset + (s - slot.gpa)).has_value();
            const bool is_private = priv.find(s).has_value();
            PageClass c = punched ? PageClass{} : classOf(is_private);
            if (run_open && (c.mapped != run_class.mapped || c.iova_bit != run_class.iova_bit ||
                             c.max_shift != run_class.max_shift || is_private != run_private)) {
                flush(s);
            }
            if (!run_open) {
                run_start = s;
                run_class = c;
                run_private = is_private;
                run_open = true;
            }
        }
        flush(slot_end);
    }

    // Exact comparison, then the rules one by one on the actual table.
    const auto& actual = table->segments();
    for (const auto& [s, seg] : ideal) {
        auto it = actual.find(s);
        if (it == actual.end() || !(it->second == seg)) ++out["layout_mismatches"];
    }
    for (const auto& [s, seg] : actual) {
        auto it = ideal.find(s);
        if (it == ideal.end() || !(it->second == seg)) ++out["layout_mismatches"];
    }
    LeafCounts ideal_leaves;
    for (const auto& [s, seg] : ideal) ideal_leaves += decompose(s, seg.end, seg.max_shift);
    out["ideal_leaves"] = ideal_leaves.total();
    out["actual_leaves"] = table->counts().total();
    if (out["actual_leaves"] > out["ideal_leaves"]) out["excess_leaves"] = out["actual_leaves"] - out["ideal_leaves"];

    for (const auto& [id, slot] : vm.memslots()) {
        if (slot.gmem == nullptr) continue;
        // Bytes of [gpa_s, gpa_e) that the table maps at iova_bit|gpa onto the pages of
        // `b` that back them.
        auto reachable = [&](std::uint64_t gs, std::uint64_t ge, std::uint64_t bit, Backing b) {
            std::uint64_t ok = 0;
            if (b.key == 0) return ok;
            auto it = actual.upper_bound(gs | bit);
            if (it != actual.begin()) --it;
            for (; it != actual.end() && it->first < (ge | bit); ++it) {
                const std::uint64_t lo = std::max(it->first, gs | bit);
                const std::uint64_t hi = std::min(it->second.end, ge | bit);
                if (lo >= hi || it->second.file != b.key) continue;
                if (lo + it->second.file_delta == b.base + ((lo & ~bit) - slot.gpa)) ok += hi - lo;
            }
            return ok;
        };
        const std::uint64_t slot_end = slot.gpa + slot.size;
        std::uint64_t at = slot.gpa;
        auto visit = [&](std::uint64_t s, std::uint64_t e, bool is_private) {
            // Punched pages carry no expectation.
            std::uint64_t live = e - s;
            slot.gmem->punched_.forEach(slot.offset + (s - slot.gpa), slot.offset + (e - slot.gpa),
                                        [&](std::uint64_t ps, std::uint64_t pe, bool) { live -= pe - ps; });
            if (!is_private) {
                // Without a shared backing (separate model, none given) nothing can reach them.
                if (backingOf(slot, false).key == 0) return;
                const std::uint64_t got = reachable(s, e, alias, backingOf(slot, false));
                if (got < live) out["shared_pages_unreachable"] += (live - got) / kPageSize;
            } else if (snp_private_dma) {
                const std::uint64_t got = reachable(s, e, 0, backingOf(slot, true));
                if (got < live) out["private_pages_unmapped"] += (live - got) / kPageSize;
            } else {
                // On the shared path (SNP without private DMA: at its GPA) a private page is exposed.
                out["private_pages_exposed"] += reachable(s, e, alias, backingOf(slot, true)) / kPageSize;
                // Separate model: the shared backing still mapped at a private GPA is a
                // stale mapping of a host page (the VMM made it private unannounced).
                if (separate) out["stale_shared_pages"] += reachable(s, e, alias, backingOf(slot, false)) / kPageSize;
            }
        };
        priv.forEach(slot.gpa, slot_end, [&](std::uint64_t s, std::uint64_t e, bool) {
            if (at < s) visit(at, s, false);
            visit(s, e, true);
            at = e;
        });
        if (at < slot_end) visit(at, slot_end, false);
    }

    if (platform_ == Platform::Snp) {
        // Only 2 MiB and 1 GiB leaves can break the RMP rule; walk just those.
        for (const auto& [s, seg] : actual) {
            if (seg.max_shift == kShift4K) continue;
            for (std::uint64_t v = s; v < seg.end;) {
                const auto [base, shift] = leafOf(s, seg.end, seg.max_shift, v);
                const std::uint64_t size = 1ULL << shift;
                v = base + size;
                if (shift == kShift4K) continue;
                if (!rmpAllows(priv, base, size)) ++out["rmp_violating_leaves"];  // SNP maps at the GPA
            }
        }
    }
    return out;
}

std::string SimKernel::layout(const Bdf& bdf) {
    std::ostringstream o;
    PciFunction* fn = function(bdf);
    if (fn == nullptr || fn->bound == nullptr || fn->bound->iommufd() == nullptr) return "unbound";
    if (const IoPageTable* t = fn->bound->iommufd()->tableOf(fn->bound->devId())) {
        for (const auto& [s, seg] : t->segments()) {
            o << std::hex << s << "-" << seg.end << ":" << seg.file_delta << "/" << std::dec << seg.max_shift
              << (seg.writeable ? "w" : "r") << " ";
        }
    }
    if (const KvmVmFile* vm = fn->bound->kvm()) {
        o << "| private";
        for (const auto& r : vm->privateRanges().all()) o << " " << std::hex << r.start << "-" << r.end;
    }
    return o.str();
}

}  // namespace tio::sim
