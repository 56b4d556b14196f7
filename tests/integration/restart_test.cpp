// Restart survival (issue 5): tio-managerd under a service manager that keeps its fd
// store (support/service_manager.hpp), killed with SIGKILL after every step of the
// lifecycle and at random moments of a stream of conversions, then started again.
// The simulator says the kernel never noticed: the same objects and files, the same
// page tables and memory attributes, the TDI still running, every rule of the
// platform kept; the daemon's own account (DumpState) is the one it had; and at the
// end, after Teardown, nothing is left anywhere.
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <random>
#include <sstream>
#include <thread>

#include "persist/memory_journal.hpp"
#include "support/eventually.hpp"
#include "support/guest_client.hpp"
#include "support/service_manager.hpp"
#include "support/vmm_client.hpp"
#include "tio/v1/guest_snapshot.pb.h"
#include "wire/message_text.hpp"

namespace tio::test {
namespace {

constexpr const char* kA = "0000:3a:00.0";
constexpr const char* kB = "0000:3b:00.0";
constexpr std::uint64_t kGpa = 0x100000000ULL;
constexpr std::uint64_t kMiB = 1ULL << 20U;
constexpr std::uint64_t kPage = 4096;

// A VMM's connection to the daemon and its proxies, re-made after every restart (the
// VMM process itself, with its VM and guest_memfd, lives on: `kvm`). No event loop
// thread: sdbus-c++ 1.2's throws when the server dies under it.
struct Vmm {
    Vmm(const std::string& address, VmmClient& kvm_side)
        : conn(sdbus::createSessionBusConnectionWithAddress(address)), guest(*conn), kvm(kvm_side) {}
    std::unique_ptr<sdbus::IConnection> conn;
    GuestClient guest;
    VmmClient& kvm;
    std::string device;
    std::string viommu;
    std::vector<std::uint8_t> dump() { return guest.DumpState(); }
};

// After a restart the VMM finds its device by path, as it would.
void rediscoverDevice(Vmm& v) {
    const auto devices = v.guest.Devices();
    if (!devices.empty()) v.device = devices.front();
}

std::string text(const std::vector<std::uint8_t>& bytes) {
    v1::GuestSnapshot s;
    if (!s.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return "unparsable";
    return wire::toText(s);
}

// The GPA ranges the daemon says are private, as "start-end" in hex, merged across
// regions: what the simulator's Layout lists after "| private".
std::string daemonPrivateRanges(const std::vector<std::uint8_t>& bytes) {
    v1::GuestSnapshot s;
    s.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
    std::vector<std::pair<std::uint64_t, std::uint64_t>> runs;
    for (const auto& m : s.memory()) {
        for (const auto& r : m.ranges()) {
            if (r.state() != "private") continue;
            if (!runs.empty() && runs.back().second == r.gpa()) runs.back().second += r.size();
            else runs.emplace_back(r.gpa(), r.gpa() + r.size());
        }
    }
    std::ostringstream o;
    for (const auto& [a, b] : runs) o << " " << std::hex << a << "-" << b;
    return o.str();
}

std::string kernelPrivateRanges(const std::string& layout) {
    const auto at = layout.find("| private");
    return at == std::string::npos ? "" : layout.substr(at + 9);
}

struct KernelView {
    std::uint64_t objects = 0;
    std::uint64_t files = 0;
    std::string layout;
    std::string tdi;
    bool operator==(const KernelView&) const = default;
};

class RestartTest : public ::testing::TestWithParam<const char*> {
protected:
    KernelView kernel() {
        return {sim.counter("objects"), sim.counter("open_files"), sim.layout(kA), sim.tdiState(kA)};
    }
    std::string auditFindings() {
        std::string bad;
        for (const auto& [k, v] : sim.audit(kA)) {
            if (k == "ideal_leaves" || k == "actual_leaves" || k == "areas") continue;
            if (v != 0) bad += k + "=" + std::to_string(v) + " ";
        }
        return bad;
    }
    // The steps a VMM takes, in order.
    std::vector<std::function<void(Vmm&)>> lifecycle() {
        return {
            [](Vmm& v) { v.kvm.attachVm(v.guest); },
            [this](Vmm& v) {
                auto fd = v.kvm.kvm().guestMemfd(64 * kMiB);
                // One memslot per region, as the regions are the daemon's unit of mapping
                // (the oracle's ideal layout is per memslot).
                ASSERT_TRUE(fd && v.kvm.kvm().bindMemory(kGpa, 32 * kMiB, fd->get(), 0) &&
                            v.kvm.kvm().bindMemory(kGpa + 32 * kMiB, 32 * kMiB, fd->get(), 32 * kMiB));
                gmem_ = sdbus::UnixFd(fd->get());
                (void)v.guest.AddMemory(kGpa, 32 * kMiB, gmem_, 0, "private", {});
            },
            [this](Vmm& v) { (void)v.guest.AddMemory(kGpa + 32 * kMiB, 32 * kMiB, gmem_, 32 * kMiB, "shared", {}); },
            [](Vmm& v) { v.device = v.kvm.addDevice(*v.conn, v.guest, kA); },
            [](Vmm& v) { v.viommu = v.guest.CreateVIommu(v.device, {}); },
            [](Vmm& v) { DeviceClient(*v.conn, v.device).CreateVDevice(v.viommu, 0x42); },
            [](Vmm& v) { DeviceClient(*v.conn, v.device).Bind(); },
            [](Vmm& v) { (void)DeviceClient(*v.conn, v.device).GuestRequest("state-change", {0x02}); },
            [](Vmm& v) {
                v.guest.ConvertMemoryRanges(
                    {{kGpa + 5 * kPage, 3 * kPage, "shared"}, {kGpa + 40 * kMiB + kPage, 2 * kMiB, "private"}});
            },
            [](Vmm& v) { v.guest.PunchHole(kGpa + 33 * kMiB, 4 * kPage); },
            [](Vmm& v) { (void)v.guest.AddDevice(kB, {}); },
        };
    }
    // After a restart the VMM finds its objects by path, as it would.
    static void rediscover(Vmm& v) {
        const auto devices = v.guest.Devices();
        if (!devices.empty()) v.device = devices.front();
        const auto viommus = v.guest.VIommus();
        if (!viommus.empty()) v.viommu = viommus.front();
    }

    SimProcess sim{GetParam(), {kA, kB}};
    ServiceManager manager{sim, "vm1"};
    VmmClient kvm{sim};   // the VMM's own side, which no daemon restart touches
    sdbus::UnixFd gmem_;  // the VMM's guest_memfd
};

TEST_P(RestartTest, SigkillAfterEveryLifecycleStepChangesNothing) {
    const auto steps = lifecycle();
    for (std::size_t k = 1; k <= steps.size(); ++k) {
        SCOPED_TRACE("killed after step " + std::to_string(k));
        manager.start();
        std::vector<std::uint8_t> before_dump;
        KernelView before;
        {
            Vmm vmm(manager.address(), kvm);
            for (std::size_t i = 0; i < k; ++i) steps[i](vmm);
            before_dump = vmm.dump();
            before = kernel();
            manager.kill9();
            EXPECT_EQ(kernel(), before) << "the fd store held everything while the daemon was dead";
        }
        manager.start();
        {
            Vmm vmm(manager.address(), kvm);
            EXPECT_EQ(text(vmm.dump()), text(before_dump)) << "the daemon's account after the restart";
            EXPECT_EQ(kernel(), before) << "nothing re-mapped, re-bound or released";
            if (k >= 4) {
                EXPECT_EQ(auditFindings(), "");
            }
            rediscover(vmm);
            for (std::size_t i = k; i < steps.size(); ++i) steps[i](vmm);
            if (k >= 8) {
                EXPECT_EQ(sim.tdiState(kA), "run");
            }
            vmm.guest.Teardown();
        }
        EXPECT_TRUE(eventually([&] { return manager.storedFds() == 0; })) << "the store is emptied at teardown";
        EXPECT_EQ(manager.stop(), 0);
        gmem_ = sdbus::UnixFd();
        kvm.exit();  // the VMM exits too
        EXPECT_TRUE(eventually([&] { return sim.counter("objects") == 0 && sim.counter("open_files") == 0; }))
            << "objects=" << sim.counter("objects") << " files=" << sim.counter("open_files");
        if (HasFailure()) return;
    }
}

TEST_P(RestartTest, SigkillAtRandomMomentsOfAConversionStream) {
    manager.start();
    // A VMM stays connected throughout: its last connection closing would tear the
    // guest down (architecture.md section 5), as after each restart it reconnects.
    auto holder = std::make_unique<Vmm>(manager.address(), kvm);
    for (const auto& step : lifecycle()) step(*holder);
    sim.setDmaGenerator(kA, 4, 11);
    std::mt19937_64 rng(0xc0ffee ^ std::hash<std::string>{}(GetParam()));
    std::mutex touched_mu;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> touched;
    for (int round = 0; round < 12; ++round) {
        SCOPED_TRACE("round " + std::to_string(round));
        std::atomic<bool> running{true};
        std::atomic<bool> connected{false};
        std::thread client([&, seed = rng()] {
            std::mt19937_64 r(seed);
            try {
                Vmm vmm(manager.address(), kvm);
                // Connected to this daemon, not queued on the socket for the next one
                // (whose start waits for this thread: a call there would hang).
                (void)vmm.guest.State();
                connected = true;
                while (running) {
                    std::vector<sdbus::Struct<std::uint64_t, std::uint64_t, std::string>> batch;
                    for (int i = 0; i < 1 + static_cast<int>(r() % 4); ++i) {
                        const std::uint64_t size = (r() % 2 == 0) ? kPage * (1 + r() % 8) : 2 * kMiB;
                        const std::uint64_t gpa = kGpa + (r() % ((64 * kMiB - size) / kPage)) * kPage;
                        {
                            std::lock_guard l(touched_mu);
                            touched.emplace_back(gpa, size);
                        }
                        batch.emplace_back(gpa, size, r() % 2 == 0 ? "private" : "shared");
                    }
                    vmm.guest.ConvertMemoryRanges(batch);
                }
            } catch (const sdbus::Error&) {
                // the daemon died under the call
            }
            connected = true;
        });
        while (!connected) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 40000));
        manager.kill9();
        running = false;
        client.join();
        holder.reset();
        manager.start();
        holder = std::make_unique<Vmm>(manager.address(), kvm);
        Vmm& vmm = *holder;
        // The daemon's account agrees with the kernel: the page table is exactly what
        // the memory attributes call for, and the daemon plans from the same state.
        ASSERT_EQ(auditFindings(), "");
        ASSERT_EQ(daemonPrivateRanges(vmm.dump()), kernelPrivateRanges(sim.layout(kA)));
        const std::uint64_t private_bytes = vmm.guest.PrivateBytes();
        vmm.guest.ConvertMemory(kGpa, 64 * kMiB, "private");
        ASSERT_EQ(auditFindings(), "");
        vmm.guest.ConvertMemory(kGpa, 64 * kMiB, "shared");
        ASSERT_EQ(auditFindings(), "");
        vmm.guest.ConvertMemory(kGpa, 32 * kMiB, "private");
        EXPECT_EQ(vmm.guest.PrivateBytes(), 32 * kMiB);
        (void)private_bytes;
        EXPECT_EQ(sim.tdiState(kA), "run");
        {
            std::lock_guard l(touched_mu);
            touched.emplace_back(kGpa, 64 * kMiB);  // the round trip above
        }
    }
    const auto c = sim.counters();
    EXPECT_EQ(c.at("machine_checks"), 0U);
    EXPECT_EQ(c.at("rmp_faults") + c.at("gpt_faults"), 0U);
    EXPECT_EQ(c.at("gmem_violations"), 0U);
    for (const auto& f : sim.takeDmaFaults()) {
        EXPECT_TRUE(std::any_of(touched.begin(), touched.end(),
                                [&](const auto& t) { return f.gpa >= t.first && f.gpa < t.first + t.second; }))
            << std::hex << f.gpa << " " << f.outcome;
    }
    holder->guest.Teardown();
    holder.reset();
    EXPECT_TRUE(eventually([&] { return manager.storedFds() == 0; }));
    EXPECT_EQ(manager.stop(), 0);
    gmem_ = sdbus::UnixFd();
    kvm.exit();
    EXPECT_TRUE(eventually([&] { return sim.counter("objects") == 0 && sim.counter("open_files") == 0; }));
}

INSTANTIATE_TEST_SUITE_P(Platforms, RestartTest, ::testing::Values("tdx", "snp", "cca"));

// In place without guest_memfd by file (a 7.4 kernel): shared pages are mapped by
// address through the daemon's own mmap, which dies with it; the pins stay with
// iommufd. After the restart nothing is re-mapped, and a new view serves new maps.
TEST(RestartByAddress, PinsSurviveAndANewViewServes) {
    SimProcess sim{"tdx", {kA}, "7.4"};
    ServiceManager manager{sim, "vm1"};
    VmmClient kvm{sim};
    auto dma = [&](std::uint64_t gpa) { return sim.dma(kA, sim.sharedIova(gpa), kPage, true); };
    manager.start();
    std::vector<std::uint8_t> before;
    std::string layout;
    {
        Vmm vmm(manager.address(), kvm);
        kvm.attachVm(vmm.guest);
        auto gmem = kvm.kvm().guestMemfd(4 * kMiB, {.mmap = true, .init_shared = true});
        ASSERT_TRUE(gmem && kvm.kvm().bindMemory(kGpa, 4 * kMiB, gmem->get()));
        (void)vmm.guest.AddMemory(kGpa, 4 * kMiB, sdbus::UnixFd(gmem->get()), 0, "shared", {});
        (void)kvm.addDevice(*vmm.conn, vmm.guest, kA);
        vmm.guest.ConvertMemory(kGpa, kMiB, "private");
        EXPECT_EQ(dma(kGpa + 2 * kMiB), "ok");
        before = vmm.dump();
        layout = sim.layout(kA);
        manager.kill9();
    }
    manager.start();
    {
        Vmm vmm(manager.address(), kvm);
        EXPECT_EQ(text(vmm.dump()), text(before));
        EXPECT_EQ(sim.layout(kA), layout) << "nothing re-mapped";
        EXPECT_EQ(dma(kGpa + 2 * kMiB), "ok") << "the pins outlived the view";
        vmm.guest.ConvertMemory(kGpa, kMiB, "shared");
        EXPECT_EQ(dma(kGpa), "ok") << "mapped through the new view";
        vmm.guest.Teardown();
    }
    EXPECT_TRUE(eventually([&] { return manager.storedFds() == 0; }));
    EXPECT_EQ(manager.stop(), 0);
    kvm.exit();
    EXPECT_TRUE(eventually([&] { return sim.counter("objects") == 0 && sim.counter("open_files") == 0; }));
}

// The memory journal holds what came after the newest snapshot and nothing before:
// a restart reads each conversion once, from the snapshot or from the journal. The
// restarted daemon's STATUS= says what re-adopting took.
TEST(RestartJournal, EachSnapshotStartsTheJournalOver) {
    SimProcess sim{"tdx", {kA}};
    ServiceManager manager{sim, "vm1"};
    VmmClient kvm{sim};
    // The records in the kept journal, read as a restarted daemon reads them.
    auto journaled = [&] {
        const UniqueFd copy = manager.storedCopy("journal");
        return copy ? persist::MemoryJournal::read(copy.get()).entries.size() : 0;
    };
    manager.start();
    std::vector<std::uint8_t> before;
    {
        Vmm vmm(manager.address(), kvm);
        kvm.attachVm(vmm.guest);
        (void)kvm.addMemory(vmm.guest, kGpa, 64 * kMiB, "private");
        EXPECT_EQ(journaled(), 0U) << "AddMemory's intent and outcome are in its snapshot";
        for (int i = 0; i < 8; ++i) vmm.guest.ConvertMemory(kGpa + 2 * i * kPage, kPage, "shared");
        // The store takes the journal's fd, and later snapshots, as it reads the
        // daemon's messages: on its own time.
        EXPECT_TRUE(eventually([&] { return journaled() == 16U; })) << "a conversion journals an intent and an outcome";
        const auto snapshots = manager.storedNames();
        (void)kvm.addDevice(*vmm.conn, vmm.guest, kA);  // not a page state: a new snapshot
        EXPECT_TRUE(eventually([&] { return manager.storedNames() != snapshots; }));
        EXPECT_EQ(journaled(), 0U);
        vmm.guest.ConvertMemory(kGpa + 32 * kMiB, 2 * kMiB, "shared");
        EXPECT_EQ(journaled(), 2U);
        before = vmm.dump();
        manager.kill9();
    }
    EXPECT_EQ(manager.status(), "serving guest vm1") << "a cold start re-adopts nothing";
    const auto calls_before = sim.counter("syscalls");
    manager.start();
    {
        // The daemon says what the re-adoption cost and how much of it was the kernel's:
        // it counts every call the simulator counted, and the sysfs reads and
        // identifications the simulator does not.
        unsigned long long calls = 0;
        double ms = 0;
        double kernel_ms = 0;
        const std::string status = manager.status();
        ASSERT_EQ(
            std::sscanf(status.c_str(), "serving guest vm1 (re-adopted in %lf ms, %lf ms of it in %llu kernel calls)",
                        &ms, &kernel_ms, &calls),
            3)
            << status;
        EXPECT_GE(calls, sim.counter("syscalls") - calls_before);
        EXPECT_GT(kernel_ms, 0.0);
        EXPECT_GE(ms, kernel_ms);
        Vmm vmm(manager.address(), kvm);
        EXPECT_EQ(text(vmm.dump()), text(before)) << "the snapshot and the journal after it, both read";
        EXPECT_EQ(vmm.guest.PrivateBytes(), 64 * kMiB - 8 * kPage - 2 * kMiB);
        vmm.guest.Teardown();
    }
    EXPECT_TRUE(eventually([&] { return manager.storedFds() == 0; }));
    EXPECT_EQ(manager.stop(), 0);
    kvm.exit();
    EXPECT_TRUE(eventually([&] { return sim.counter("objects") == 0 && sim.counter("open_files") == 0; }));
}

// The separate model (a 7.3 kernel): the shared memfd is kept in the fd store too
// (shm-N), and after the restart the daemon still maps shared pages from it.
TEST(RestartSeparateModel, TheSharedBackingIsKeptAndStillMapped) {
    SimProcess sim{"tdx", {kA}, "7.3"};
    ServiceManager manager{sim, "vm1"};
    VmmClient kvm{sim};
    auto dma = [&](std::uint64_t gpa) { return sim.dma(kA, sim.sharedIova(gpa), kPage, true); };
    manager.start();
    std::vector<std::uint8_t> before;
    std::uint64_t objects = 0, files = 0;
    {
        Vmm vmm(manager.address(), kvm);
        kvm.attachVm(vmm.guest);
        EXPECT_EQ(vmm.guest.MemoryModel(), "separate");
        auto gmem = kvm.kvm().guestMemory(kGpa, 8 * kMiB);
        ASSERT_TRUE(gmem && kvm.kvm().setAttributes(kGpa, 8 * kMiB, true));
        UniqueFd memfd = TestVmm::sharedMemory(8 * kMiB);
        ASSERT_TRUE(memfd);
        const auto region = vmm.guest.AddMemory(kGpa, 8 * kMiB, sdbus::UnixFd(gmem->get()), 0, "private",
                                                {{"shared-fd", sdbus::Variant(sdbus::UnixFd(memfd.get()))},
                                                 {"shared-offset", sdbus::Variant(std::uint64_t{0})}});
        auto props = sdbus::createProxy(*vmm.conn, "org.tio.Guest1.vm1", region);
        EXPECT_TRUE(props->getProperty("SharedMapped").onInterface("org.tio.Memory1").get<bool>());
        (void)kvm.addDevice(*vmm.conn, vmm.guest, kA);
        ASSERT_TRUE(kvm.kvm().setAttributes(kGpa, 2 * kMiB, false));
        vmm.guest.ConvertMemory(kGpa, 2 * kMiB, "shared");
        EXPECT_EQ(dma(kGpa), "ok");
        before = vmm.dump();
        objects = sim.counter("objects");
        files = sim.counter("open_files");
        manager.kill9();
    }
    manager.start();
    {
        Vmm vmm(manager.address(), kvm);
        EXPECT_EQ(text(vmm.dump()), text(before)) << "the daemon's account after the restart";
        EXPECT_EQ(sim.counter("objects"), objects);
        EXPECT_EQ(sim.counter("open_files"), files) << "nothing re-mapped or released";
        EXPECT_EQ(dma(kGpa), "ok");
        vmm.guest.ConvertMemory(kGpa, 2 * kMiB, "private");
        ASSERT_TRUE(kvm.kvm().setAttributes(kGpa, 2 * kMiB, true));
        EXPECT_NE(dma(kGpa), "ok") << "unmapped from the kept memfd after the restart";
        EXPECT_EQ(sim.counter("machine_checks"), 0U);
        vmm.guest.Teardown();
    }
    EXPECT_TRUE(eventually([&] { return manager.storedFds() == 0; }));
    EXPECT_EQ(manager.stop(), 0);
    kvm.exit();
    EXPECT_TRUE(eventually([&] { return sim.counter("objects") == 0 && sim.counter("open_files") == 0; }));
}

// A quarantine is the daemon's own verdict on a TDI whose state nobody knows: a
// restart keeps it (the TSM's answer now proves nothing about the lost one).
TEST(RestartQuarantine, AQuarantinedTdiStaysQuarantined) {
    SimProcess sim{"tdx", {kA}};
    ServiceManager manager{sim, "vm1"};
    VmmClient kvm{sim};
    manager.start();
    {
        Vmm vmm(manager.address(), kvm);
        kvm.attachVm(vmm.guest);
        vmm.device = kvm.addDevice(*vmm.conn, vmm.guest, kA);
        vmm.viommu = vmm.guest.CreateVIommu(vmm.device, {});
        DeviceClient dev(*vmm.conn, vmm.device);
        dev.CreateVDevice(vmm.viommu, 0x42);
        sim.injectFailure("IOMMU_VDEVICE_TSM_REQ", 2, "EFAULT");  // LOCK commits, its answer is lost
        EXPECT_EQ(errorName([&] { dev.Bind(); }), "org.tio.Error.Kernel");
        EXPECT_EQ(dev.TdiState(), "quarantined");
        EXPECT_EQ(sim.tdiState(kA), "locked");
        manager.kill9();
    }
    manager.start();
    {
        Vmm vmm(manager.address(), kvm);
        rediscoverDevice(vmm);
        DeviceClient dev(*vmm.conn, vmm.device);
        EXPECT_EQ(dev.TdiState(), "quarantined") << "the restart did not lift it";
        EXPECT_EQ(errorName([&] { dev.Bind(); }), "org.tio.Error.InvalidState");
        dev.Unbind();
        EXPECT_EQ(dev.TdiState(), "unlocked");
        EXPECT_EQ(sim.tdiState(kA), "unlocked");
        vmm.guest.Teardown();
    }
    EXPECT_TRUE(eventually([&] { return manager.storedFds() == 0; }));
    EXPECT_EQ(manager.stop(), 0);
    kvm.exit();
    EXPECT_TRUE(eventually([&] { return sim.counter("objects") == 0 && sim.counter("open_files") == 0; }));
}

// An object the kernel made but the daemon never learnt of (it died in the call) is
// found after the restart and destroyed: the scrub asks the unknown ids up to the
// known count plus its margin, which holds because iommufd gives the lowest free id.
TEST(RestartScrub, AnObjectTheKernelMadeButNeverReportedIsDestroyed) {
    SimProcess sim{"tdx", {kA}};
    ServiceManager manager{sim, "vm1"};
    VmmClient kvm{sim};
    manager.start();
    std::uint64_t objects_before = 0;
    {
        Vmm vmm(manager.address(), kvm);
        kvm.attachVm(vmm.guest);
        vmm.device = kvm.addDevice(*vmm.conn, vmm.guest, kA);
        vmm.viommu = vmm.guest.CreateVIommu(vmm.device, {});
        objects_before = sim.counter("objects");
        // The simulator makes the vDEVICE at once and answers a second later (it sleeps,
        // so asking it anything waits for the answer too): the daemon is stopped inside
        // that second, before it can read the answer, and killed.
        sim.injectFailure("IOMMU_VDEVICE_ALLOC", 1, "ETIMEDOUT");
        std::thread call([&] {
            try {
                Vmm caller(manager.address(), kvm);
                DeviceClient(*caller.conn, vmm.device).CreateVDevice(vmm.viommu, 0x42);
            } catch (const sdbus::Error&) {  // the daemon dies under it
            }
        });
        std::this_thread::sleep_for(std::chrono::milliseconds(400));
        EXPECT_EQ(::kill(manager.pid(), SIGSTOP), 0);
        EXPECT_EQ(sim.counter("objects"), objects_before + 1) << "the call reached the kernel before the stop";
        manager.kill9();
        call.join();
    }
    manager.start();
    EXPECT_EQ(sim.counter("objects"), objects_before) << "the restart destroyed the vDEVICE nobody accounted for";
    {
        Vmm vmm(manager.address(), kvm);
        rediscoverDevice(vmm);
        EXPECT_FALSE(DeviceClient(*vmm.conn, vmm.device).HasVDevice());
        vmm.guest.Teardown();
    }
    EXPECT_EQ(manager.stop(), 0);
    kvm.exit();
    EXPECT_TRUE(eventually([&] { return sim.counter("objects") == 0 && sim.counter("open_files") == 0; }));
}

}  // namespace
}  // namespace tio::test
