// Conversion benchmark (issue 4): a simulated guest of --guest-gib GiB (1 TiB by
// default), all private at start, and --conversions random conversions of 4 KiB or
// 2 MiB (2 MiB aligned), each flipping the state its range starts in.
//
// tio-manager: core::Guest (the daemon's model, planner and kernel calls) against a
// real tio-simkernel process, huge IOPTEs with hitless split/join, with its memory
// journal and snapshots kept as tio-managerd keeps them (the daemon's own time
// includes them, their write()s and sd_notify()s too).
// Baseline, same process, same simulator, same conversion sequence: what QEMU does
// today (kernel-uapi.md 6.3): a bitmap with one bit per 4 KiB page, the attribute
// first, then on ->shared one IOMMU_IOAS_MAP_FILE per 4 KiB page and on ->private
// one IOMMU_IOAS_UNMAP over the range. The baseline builds one kernel area per shared
// page, so it runs only the first --baseline conversions; tio-manager's figures are
// printed for that same prefix (the ratios use it) and for the whole run.
//
// Prints conversions/s, latency per conversion and the daemon's own time in it (the
// latency minus the time inside kernel calls; p50/p99), iommufd calls and IOPTE
// writes per conversion, pages disrupted (unmapped without being converted), heap
// bytes the state costs, and the IOAS areas and IOPTEs the kernel holds at the end.
// No pass/fail on speed.
// The caller and the simulator share one CPU unless --cpu spread (one_cpu.hpp).
//   conversion_bench [--platform tdx|snp|cca] [--guest-gib G] [--conversions N]
//                    [--baseline B] [--seed S] [--cpu one|spread]
#include <malloc.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/unix_socket.hpp"
#include "core/guest.hpp"
#include "kernel/iommufd.hpp"
#include "kernel/kvm.hpp"
#include "kernel/pci_sysfs.hpp"
#include "kernel/timed_syscalls.hpp"
#include "kernel/uapi/ioctl_encoding.hpp"
#include "kernel/vfio_device.hpp"
#include "one_cpu.hpp"
#include "persist/fd_store.hpp"
#include "persist/state_persister.hpp"
#include "random_conversions.hpp"
#include "support/sim_process.hpp"
#include "support/test_vmm.hpp"
#include "support/trusted_caller.hpp"
#include "vmm/kvm_vmm.hpp"

namespace tio::bench {
namespace {

constexpr std::uint64_t kPage = 4096;
constexpr std::uint64_t kGpa = 1ULL << 32U;
constexpr std::uint32_t kIommufdIoctlType = 0x3B;

// Counts the iommufd ioctls that pass through (the rest of the kernel is not the
// IOMMU) and the time spent inside kernel calls.
// Counts iommufd ioctls; TimedSyscalls keeps the time spent inside every kernel call
// (the simulator's share).
class CountingSyscalls final : public kernel::TimedSyscalls {
public:
    using TimedSyscalls::TimedSyscalls;
    std::uint64_t iommufd_calls = 0;
    kernel::SysResult<long> ioctl(int fd, unsigned long request, unsigned long arg) override {
        if (((request >> 8U) & 0xffU) == kIommufdIoctlType) ++iommufd_calls;
        return TimedSyscalls::ioctl(fd, request, arg);
    }
    [[nodiscard]] double kernelMicros() const { return std::chrono::duration<double, std::micro>(inside()).count(); }
};

struct Conversion {
    std::uint64_t gpa = 0;
    std::uint64_t size = 0;
};

struct Figures {
    std::uint64_t conversions = 0;
    double seconds = 0;
    std::vector<double> latency_us;
    std::vector<double> daemon_us;  // latency minus the time inside kernel calls
    std::uint64_t iommufd_calls = 0;
    std::uint64_t iopte_writes = 0;
    std::uint64_t pages_disrupted = 0;
    std::uint64_t heap_bytes = 0;
    std::uint64_t state_bytes = 0;  // the page-state record's own count (PageStates::heapBytes)
    std::uint64_t state_runs = 0;   // runs of one page state in the record
    std::uint64_t areas = 0;
    std::uint64_t ioptes = 0;
    [[nodiscard]] static double percentile(std::vector<double> v, double p) {
        if (v.empty()) return 0;
        std::sort(v.begin(), v.end());
        return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
    }
};

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "conversion_bench: %s\n", what.c_str());
    std::exit(1);
}

template <typename T>
T must(Result<T> r, const char* what) {
    if (!r) die(std::string(what) + ": " + r.error().message);
    return std::move(*r);
}
inline void must(Result<> r, const char* what) {
    if (!r) die(std::string(what) + ": " + r.error().message);
}

// Heap bytes in use, including the large blocks malloc serves with mmap.
std::size_t heapInUse() {
    const struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
}

std::uint64_t ioptesWritten(const std::map<std::string, std::uint64_t>& c) {
    return c.at("iopte_map") + c.at("iopte_unmap") + c.at("iopte_split") + c.at("iopte_merge");
}

// What a run measured, once its loop is done: counter and call deltas, the pages
// unmapped beyond those that had to be, heap growth, and the final table.
struct Start {
    std::map<std::string, std::uint64_t> counters;
    std::uint64_t iommufd_calls = 0;
    std::size_t heap = 0;
    std::chrono::steady_clock::time_point time;
};

Start startOf(test::SimProcess& sim, const CountingSyscalls& sys, std::size_t heap_before) {
    return {sim.counters(), sys.iommufd_calls, heap_before, std::chrono::steady_clock::now()};
}

void finish(Figures& f, test::SimProcess& sim, const CountingSyscalls& sys, const Start& s, std::uint64_t count,
            std::uint64_t pages_that_had_to_go, const char* bdf) {
    f.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - s.time).count();
    const auto c1 = sim.counters();
    f.conversions = count;
    f.iommufd_calls = sys.iommufd_calls - s.iommufd_calls;
    f.iopte_writes = ioptesWritten(c1) - ioptesWritten(s.counters);
    const std::uint64_t unmapped = c1.at("pages_unmapped") - s.counters.at("pages_unmapped");
    f.pages_disrupted = unmapped > pages_that_had_to_go ? unmapped - pages_that_had_to_go : 0;
    f.heap_bytes = heapInUse() - s.heap;
    const auto audit = sim.audit(bdf);
    f.areas = audit.at("areas");
    f.ioptes = audit.at("actual_leaves");
}

// The random sequence both sides run (random_conversions.hpp), at the guest's GPA.
std::vector<Conversion> sequence(std::uint64_t guest_bytes, std::uint64_t n, std::uint64_t seed) {
    std::vector<Conversion> out;
    out.reserve(n);
    for (const RandomConversion& c : randomConversions(guest_bytes, n, seed)) out.push_back({kGpa + c.offset, c.size});
    return out;
}

// tio-manager: the daemon's core with its planner.
Figures runTioManager(test::SimProcess& sim, kernel::Syscalls& raw, std::uint64_t guest_bytes,
                      const std::vector<Conversion>& seq, std::uint64_t count, Platform platform) {
    CountingSyscalls sys(raw);
    Figures f;
    f.latency_us.reserve(count);
    f.daemon_us.reserve(count);
    // The benchmark's own record, to pick each direction: a bit per page, set = shared,
    // allocated before the heap is measured (it is not the daemon's).
    std::vector<std::uint64_t> shared((guest_bytes / kPage + 63) / 64, 0);
    auto isShared = [&](std::uint64_t gpa) {
        const std::uint64_t p = (gpa - kGpa) / kPage;
        return ((shared[p / 64] >> (p % 64)) & 1U) != 0;
    };
    // What the daemon keeps for a restart, as tio-managerd keeps it: the memory journal
    // takes an intent and an outcome per conversion, and after each the persister
    // checks the fd store and folds a grown journal into a snapshot. Its fd store
    // messages go to a socket a thread of ours empties, as systemd would.
    const std::string notify_path = sim.dir() + "/notify";
    UniqueFd notify(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", notify_path.c_str());
    if (!notify || ::bind(notify.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) < 0)
        die("notify socket");
    ::setenv("NOTIFY_SOCKET", notify_path.c_str(), 1);
    std::atomic<bool> done{false};
    std::thread manager([&] {
        while (!done) {
            pollfd p{notify.get(), POLLIN, 0};
            if (::poll(&p, 1, 50) > 0) (void)unixsock::receive(notify.get(), 64U * 1024U);
        }
    });
    struct Joiner {
        std::atomic<bool>& done;
        std::thread& t;
        ~Joiner() {
            done = true;
            t.join();
            ::unsetenv("NOTIFY_SOCKET");
        }
    } joiner{done, manager};
    const std::size_t heap_before = heapInUse();
    core::Guest g(core::GuestConfig{.name = "bench", .platform = platform, .claim_dir = sim.dir() + "/claims"}, sys,
                  test::anyDevice("bench"));
    persist::FdStore fd_store({});
    persist::StatePersister persister(fd_store, g, "sim");
    g.setMemoryObserver(&persister);
    g.subscribe([&] { persister.persist(); });
    // The VMM's side, outside the figures' kernel calls (it is not the daemon's work).
    test::TestVmm vmm(raw);
    must(vmm.attachTo(g), "AttachVm");
    auto gmem = must(vmm.guestMemory(kGpa, guest_bytes), "guest_memfd");
    must(g.addMemory(test::trusted(), kGpa, guest_bytes, std::move(gmem), 0, core::MemoryState::Private, std::nullopt),
         "AddMemory");
    const auto dev = must(g.addDevice(test::trusted(), *Bdf::parse("0000:3a:00.0")), "AddDevice");
    must(vmm.addDeviceFile(g, dev), "FILE_ADD");
    must(g.attachDevice(test::trusted(), dev), "Attach");
    std::uint64_t converted_from_shared = 0;
    const Start start = startOf(sim, sys, heap_before);
    for (std::uint64_t i = 0; i < count; ++i) {
        const Conversion& c = seq[i];
        const bool to_shared = !isShared(c.gpa);
        // Unmapping what was shared in the range is the conversion; anything more disrupts.
        for (std::uint64_t at = c.gpa; !to_shared && at < c.gpa + c.size; at += kPage) {
            converted_from_shared += isShared(at) ? 1 : 0;
        }
        const core::MemoryConversion mc{c.gpa, c.size,
                                        to_shared ? core::MemoryState::Shared : core::MemoryState::Private};
        const auto s = std::chrono::steady_clock::now();
        const double k = sys.kernelMicros();
        must(g.convertMemory(test::trusted(), {&mc, 1}), "ConvertMemory");
        const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - s).count();
        f.latency_us.push_back(us);
        f.daemon_us.push_back(us - (sys.kernelMicros() - k));
        for (std::uint64_t p = (c.gpa - kGpa) / kPage; p < (c.gpa + c.size - kGpa) / kPage; ++p) {
            if (to_shared) shared[p / 64] |= 1ULL << (p % 64);
            else shared[p / 64] &= ~(1ULL << (p % 64));
        }
    }
    finish(f, sim, sys, start, count, platform == Platform::Snp ? 0 : converted_from_shared, "0000:3a:00.0");
    for (const auto& [id, m] : g.memory()) {
        f.state_bytes += m.states.heapBytes();
        f.state_runs += m.states.all().size();
    }
    if (sim.audit("0000:3a:00.0").at("layout_mismatches") != 0) die("the oracle found the layout wrong");
    return f;
}

// QEMU today: a bitmap, attribute first, 4 KiB maps, whole-range unmaps.
Figures runQemuStyle(test::SimProcess& sim, kernel::Syscalls& raw, std::uint64_t guest_bytes,
                     const std::vector<Conversion>& seq, std::uint64_t count, Platform platform) {
    CountingSyscalls sys(raw);
    Figures f;
    f.latency_us.reserve(count);
    f.daemon_us.reserve(count);
    const std::size_t heap_before = heapInUse();
    // QEMU is the VMM: it creates the VM itself. In place, the attribute is the
    // guest_memfd's (KVM_SET_MEMORY_ATTRIBUTES2), as the in-place series has it.
    auto kvm = must(vmm::Kvm::open(sys), "open kvm");
    auto vm = must(kvm.createVm(kernel::VmType::Default), "create vm");
    auto gmem = must(vm.createGuestMemfd(guest_bytes, {}), "guest_memfd");
    must(vm.setMemslot(0, kGpa, guest_bytes, gmem.fd(), 0), "memslot");
    auto attributes = [&](std::uint64_t gpa, std::uint64_t size, bool is_private) {
        auto r = kernel::setGuestMemfdAttributes(sys, gmem.fd(), gpa - kGpa, size, is_private);
        if (!r) die("attributes: " + r.error().error.message);
    };
    attributes(kGpa, guest_bytes, true);
    auto kvm_vfio = must(vm.createVfioDevice(), "kvm-vfio");
    auto ictx = must(kernel::Iommufd::open(sys), "iommufd");
    const auto ioas = must(ictx.allocIoas(), "ioas");
    kernel::PciSysfs sysfs(sys);
    const auto cdev = must(sysfs.vfioCdev(*Bdf::parse("0000:3b:00.0")), "cdev");
    auto dev = must(kernel::VfioDevice::open(sys, cdev.path, cdev.rdev), "vfio open");
    must(kvm_vfio.addFile(dev.fd()), "FILE_ADD");
    const auto dev_id = must(dev.bindIommufd(ictx.fd()), "bind");
    const auto hwpt = must(ictx.allocNestParentHwpt(dev_id, ioas), "hwpt");
    must(dev.attach(hwpt), "attach");
    // RamBlockAttributes: one bit per page of the guest, set = shared.
    std::vector<std::uint64_t> bitmap(guest_bytes / kPage / 64, 0);
    const std::uint64_t alias = sim.sharedIova(0);
    std::uint64_t converted_from_shared = 0;
    const Start start = startOf(sim, sys, heap_before);
    for (std::uint64_t i = 0; i < count; ++i) {
        const Conversion& c = seq[i];
        const std::uint64_t first = (c.gpa - kGpa) / kPage;
        auto bit = [&](std::uint64_t p) { return (bitmap[p / 64] >> (p % 64)) & 1U; };
        const bool to_shared = bit(first) == 0;
        const auto s = std::chrono::steady_clock::now();
        const double k = sys.kernelMicros();
        attributes(c.gpa, c.size, !to_shared);
        for (std::uint64_t p = first; p < first + c.size / kPage; ++p) {
            const std::uint64_t gpa = kGpa + p * kPage;
            if (to_shared && bit(p) == 0) {
                must(ictx.mapFile(ioas, gmem.fd(), gpa - kGpa, kPage, gpa | alias, true), "map");
                bitmap[p / 64] |= 1ULL << (p % 64);
            } else if (!to_shared && bit(p) == 1) {
                ++converted_from_shared;
                bitmap[p / 64] &= ~(1ULL << (p % 64));
            }
        }
        if (!to_shared) {
            auto u = ictx.unmap(ioas, c.gpa | alias, c.size);
            if (!u && u.error().sys_errno != ENOENT) die("unmap: " + u.error().message);  // ENOENT: QEMU's "success"
        }
        const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - s).count();
        f.latency_us.push_back(us);
        f.daemon_us.push_back(us - (sys.kernelMicros() - k));
    }
    finish(f, sim, sys, start, count, converted_from_shared, "0000:3b:00.0");
    (void)platform;
    return f;
}

void row(const char* name, double ours_prefix, double qemu, double ours_all, bool lower_is_better, const char* fmt) {
    char a[32], b[32], c[32];
    std::snprintf(a, sizeof a, fmt, ours_prefix);
    std::snprintf(b, sizeof b, fmt, qemu);
    std::snprintf(c, sizeof c, fmt, ours_all);
    // How much better tio-manager is: QEMU-style / tio-manager for costs, the inverse
    // for throughput; below 1 it is worse, and says so.
    std::string ratio = "-";
    if (ours_prefix > 0 && qemu > 0) {
        const double r = lower_is_better ? qemu / ours_prefix : ours_prefix / qemu;
        char buf[32];
        if (r >= 1) std::snprintf(buf, sizeof buf, "%.1fx better", r);
        else std::snprintf(buf, sizeof buf, "%.1fx worse", 1 / r);
        ratio = buf;
    }
    std::printf("%-34s %16s %16s %14s %16s\n", name, a, b, ratio.c_str(), c);
}

}  // namespace
}  // namespace tio::bench

int main(int argc, char** argv) {
    using namespace tio;
    using namespace tio::bench;
    std::string platform_name = "tdx";
    std::uint64_t guest_gib = 1024;
    std::uint64_t conversions = 1000000;
    std::uint64_t baseline = 10000;
    std::uint64_t seed = 1;
    bool one_cpu = true;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        const std::string v = argv[i + 1];
        if (a == "--platform") platform_name = v;
        else if (a == "--guest-gib") guest_gib = std::stoull(v);
        else if (a == "--conversions") conversions = std::stoull(v);
        else if (a == "--baseline") baseline = std::stoull(v);
        else if (a == "--seed") seed = std::stoull(v);
        else if (a == "--cpu" && (v == "one" || v == "spread")) one_cpu = v == "one";
        else die("unknown option " + a);
    }
    const auto platform = parsePlatform(platform_name);
    if (!platform || guest_gib == 0) die("bad --platform or --guest-gib");
    baseline = std::min(baseline, conversions);
    const std::uint64_t guest_bytes = guest_gib << 30U;
    const auto seq = sequence(guest_bytes, conversions, seed);

    const std::string cpus = one_cpu ? pinToOneCpu() : "CPUs as the scheduler places them";
    std::printf(
        "conversion benchmark: %s, %llu GiB guest (all private at start), %llu random conversions "
        "(half 4 KiB, half 2 MiB aligned), seed %llu; %s\n",
        platform_name.c_str(), static_cast<unsigned long long>(guest_gib), static_cast<unsigned long long>(conversions),
        static_cast<unsigned long long>(seed), cpus.c_str());
    Figures ours_prefix, ours_all, qemu;
    {
        test::SimProcess sim(platform_name, {"0000:3a:00.0", "0000:3b:00.0"});
        std::filesystem::create_directory(sim.dir() + "/claims");
        auto sys = sim.connect();
        ours_prefix = runTioManager(sim, *sys, guest_bytes, seq, baseline, *platform);
    }
    {
        test::SimProcess sim(platform_name, {"0000:3a:00.0", "0000:3b:00.0"});
        std::filesystem::create_directory(sim.dir() + "/claims");
        auto sys = sim.connect();
        ours_all = runTioManager(sim, *sys, guest_bytes, seq, conversions, *platform);
    }
    {
        test::SimProcess sim(platform_name, {"0000:3a:00.0", "0000:3b:00.0"});
        auto sys = sim.connect();
        qemu = runQemuStyle(sim, *sys, guest_bytes, seq, baseline, *platform);
    }
    const auto per = [](const Figures& f, std::uint64_t v) {
        return f.conversions == 0 ? 0.0 : static_cast<double>(v) / static_cast<double>(f.conversions);
    };
    std::printf("\n%-34s %16s %16s %14s %16s\n", "", "tio-manager", "QEMU-style", "ratio", "tio-manager");
    std::printf("%-34s %16s %16s %14s %16s\n", "conversions measured", std::to_string(baseline).c_str(),
                std::to_string(baseline).c_str(), "", std::to_string(conversions).c_str());
    row("conversions/s", static_cast<double>(ours_prefix.conversions) / ours_prefix.seconds,
        static_cast<double>(qemu.conversions) / qemu.seconds,
        static_cast<double>(ours_all.conversions) / ours_all.seconds, false, "%.0f");
    auto pct = [](const Figures& f, bool daemon, double p) {
        return Figures::percentile(daemon ? f.daemon_us : f.latency_us, p);
    };
    row("latency p50 (us)", pct(ours_prefix, false, 0.5), pct(qemu, false, 0.5), pct(ours_all, false, 0.5), true,
        "%.1f");
    row("latency p99 (us)", pct(ours_prefix, false, 0.99), pct(qemu, false, 0.99), pct(ours_all, false, 0.99), true,
        "%.1f");
    row("daemon time p50 (us, no kernel)", pct(ours_prefix, true, 0.5), pct(qemu, true, 0.5), pct(ours_all, true, 0.5),
        true, "%.2f");
    row("daemon time p99 (us, no kernel)", pct(ours_prefix, true, 0.99), pct(qemu, true, 0.99),
        pct(ours_all, true, 0.99), true, "%.2f");
    // What bounds conversions/s: the daemon's own time, or the kernel round trips.
    auto share = [](const Figures& f) {
        double daemon = 0;
        double wall = 0;
        for (double v : f.daemon_us) daemon += v;
        for (double v : f.latency_us) wall += v;
        return wall == 0 ? 0.0 : 100.0 * daemon / wall;
    };
    std::printf("%-34s %16.1f %16.1f %14s %16.1f\n", "daemon share of wall time (%)", share(ours_prefix), share(qemu),
                "-", share(ours_all));
    row("iommufd calls per conversion", per(ours_prefix, ours_prefix.iommufd_calls), per(qemu, qemu.iommufd_calls),
        per(ours_all, ours_all.iommufd_calls), true, "%.2f");
    row("IOPTE writes per conversion", per(ours_prefix, ours_prefix.iopte_writes), per(qemu, qemu.iopte_writes),
        per(ours_all, ours_all.iopte_writes), true, "%.2f");
    row("pages disrupted", static_cast<double>(ours_prefix.pages_disrupted), static_cast<double>(qemu.pages_disrupted),
        static_cast<double>(ours_all.pages_disrupted), true, "%.0f");
    row("state memory (KiB, heap)", static_cast<double>(ours_prefix.heap_bytes) / 1024,
        static_cast<double>(qemu.heap_bytes) / 1024, static_cast<double>(ours_all.heap_bytes) / 1024, true, "%.0f");
    row("state memory (KiB, counted)", static_cast<double>(ours_prefix.state_bytes) / 1024,
        static_cast<double>(guest_bytes / kPage / 8) / 1024, static_cast<double>(ours_all.state_bytes) / 1024, true,
        "%.0f");
    row("page-state runs at end", static_cast<double>(ours_prefix.state_runs), 0,
        static_cast<double>(ours_all.state_runs), true, "%.0f");
    row("IOAS areas at end", static_cast<double>(ours_prefix.areas), static_cast<double>(qemu.areas),
        static_cast<double>(ours_all.areas), true, "%.0f");
    row("IOPTEs at end", static_cast<double>(ours_prefix.ioptes), static_cast<double>(qemu.ioptes),
        static_cast<double>(ours_all.ioptes), true, "%.0f");
    return 0;
}
