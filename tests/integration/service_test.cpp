// tio-managerd as a VMM sees it: the real daemon binary on its guest socket, the
// simulated kernel as the oracle, the sdbus-c++ proxies generated from the XML.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <sdbus-c++/sdbus-c++.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>

#include "audit/audit_log.hpp"
#include "support/daemon_rig.hpp"
#include "support/eventually.hpp"
#include "support/guest_client.hpp"
#include "support/vmm_client.hpp"
#include "tio/Device1-proxy.h"
#include "tio/Guest1-proxy.h"
#include "tio/VIommu1-proxy.h"

namespace tio::test {
namespace {

constexpr const char* kA = "0000:3a:00.0";
constexpr const char* kB = "0000:3b:00.0";
constexpr std::uint64_t kGpa = 0x100000000ULL;

class ServiceTest : public ::testing::Test {
protected:
    SimProcess sim{"tdx", {kA, kB, "0000:3c:00.0,notdisp"}};
    PrivateSystemBus bus;
    std::unique_ptr<DaemonProcess> daemon = std::make_unique<DaemonProcess>(sim, "vm1", bus.address());
    VmmClient vmm{sim};  // the VMM's own side: VM, guest_memfds, KVM-VFIO device

    std::unique_ptr<sdbus::IConnection> connect() {
        auto c = sdbus::createSessionBusConnectionWithAddress(daemon->address());
        c->enterEventLoopAsync();
        return c;
    }
    bool kernelEmpty() {
        return eventually([&] { return sim.counter("objects") == 0 && sim.counter("open_files") == 0; });
    }
};

TEST_F(ServiceTest, WholeLifecycleWithSignalsAndFdsBothWays) {
    {
        auto conn = connect();
        GuestClient g(*conn);
        EXPECT_EQ(g.State(), "empty");
        EXPECT_EQ(g.Clients(), 1U);
        EXPECT_EQ(g.MemoryModel(), "");
        EXPECT_EQ(errorName([&] { (void)g.CreateVm("default", {}); }), "org.tio.Error.NotSupported")
            << "deprecated: the VMM creates its VM";
        vmm.attachVm(g);
        EXPECT_EQ(g.State(), "active");
        EXPECT_EQ(g.VmType(), "default");
        EXPECT_EQ(g.MemoryModel(), "in-place");
        EXPECT_TRUE(g.Kernel().at("in-place-conversion"));
        EXPECT_EQ(errorName([&] { (void)g.CreateGuestMemory(4096, {}); }), "org.tio.Error.NotSupported");
        auto region = vmm.addMemory(g, kGpa, 16ULL << 20U, "shared");
        EXPECT_EQ(g.SharedBytes(), 16ULL << 20U);
        EXPECT_TRUE(g.Kernel().at("guest-memfd-map-file"));
        auto dev_path = vmm.addDevice(*conn, g, kA);
        EXPECT_EQ(std::string(dev_path), "/org/tio/Guest1/device/0000_3a_00_0");
        EXPECT_TRUE(eventually([&] {
            std::lock_guard l(g.mu);
            return g.added.contains(dev_path) && g.added.contains(region);
        })) << "InterfacesAdded";
        EXPECT_EQ(sim.dma(kA, sim.sharedIova(kGpa), 16ULL << 20U, true), "ok");

        DeviceClient dev(*conn, dev_path);
        EXPECT_EQ(dev.Dsm(), kA) << "a PF is its own security manager";
        auto vfio = dev.GetVfioFd();  // fd from the daemon: a duplicate of its device fd
        EXPECT_GE(vfio.get(), 0);
        auto viommu_path = g.CreateVIommu(dev_path, {});
        ViommuClient viommu(*conn, viommu_path);
        EXPECT_EQ(viommu.Type(), "tdx-connect");
        dev.CreateVDevice(viommu_path, 0x42);
        EXPECT_EQ(viommu.VDevices(), std::vector<sdbus::ObjectPath>{dev_path});
        EXPECT_EQ(errorName([&] { viommu.Destroy(); }), "org.tio.Error.Busy");
        dev.Bind();
        EXPECT_EQ(dev.TdiState(), "locked");
        const auto [report, generation] = dev.GetEvidence("interface-report");
        EXPECT_NE(std::string(report.begin(), report.end()).find(kA), std::string::npos);
        EXPECT_GE(generation, 1U);
        EXPECT_EQ(errorName([&] { (void)dev.GetEvidence("secrets"); }), "org.tio.Error.InvalidArgument");
        EXPECT_EQ(errorName([&] { (void)dev.TsmRequest("lock", {}); }), "org.tio.Error.InvalidArgument");
        EXPECT_EQ(std::get<1>(dev.TsmRequest(
                      "validate-mmio", std::vector<uint8_t>{0, 0, 0, 0xe0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0})),
                  0U)
            << "tsm_code";
        EXPECT_EQ(dev.GuestRequest("state-change", {0x02}), std::vector<uint8_t>{0x02});
        EXPECT_EQ(sim.tdiState(kA), "run");
        EXPECT_TRUE(eventually([&] {
            std::lock_guard l(dev.mu);
            return dev.tdi_changes == std::vector<std::string>{"locked", "run"};
        })) << "PropertiesChanged(TdiState)";
        dev.Unbind();
        dev.DestroyVDevice();
        viommu.Destroy();
        dev.Remove();
        EXPECT_TRUE(eventually([&] {
            std::lock_guard l(g.mu);
            return g.removed.contains(dev_path) && g.removed.contains(viommu_path);
        })) << "InterfacesRemoved";
        g.Teardown();
        EXPECT_EQ(g.State(), "empty");
        EXPECT_TRUE(g.Devices().empty());
        conn->leaveEventLoop();
    }
    vmm.exit();
    EXPECT_TRUE(kernelEmpty());
}

TEST_F(ServiceTest, EveryErrorIsNamed) {
    auto conn = connect();
    GuestClient g(*conn);
    EXPECT_EQ(errorName([&] { g.AddDevice(kA, {}); }), "org.tio.Error.InvalidState");
    EXPECT_EQ(errorName([&] {
                  g.AttachVm(vmm.vmFd(), {{"type", sdbus::Variant(std::string("quantum"))}});
              }),
              "org.tio.Error.InvalidArgument");
    EXPECT_EQ(errorName([&] {
                  g.AttachVm(vmm.vmFd(), {{"bogus", sdbus::Variant(1)}});
              }),
              "org.tio.Error.InvalidArgument");
    EXPECT_EQ(errorName([&] {
                  g.AttachVm(vmm.vmFd(), {{"type", sdbus::Variant(1)}});
              }),
              "org.tio.Error.InvalidArgument")
        << "type must be s";
    EXPECT_EQ(errorName([&] {
                  g.AttachVm(vmm.vmFd(), {{"type", sdbus::Variant(std::string("snp"))}});
              }),
              "org.tio.Error.InvalidArgument")
        << "an SNP VM on a TDX guest";
    EXPECT_EQ(g.State(), "empty");
    vmm.attachVm(g);
    EXPECT_EQ(errorName([&] { vmm.attachVm(g); }), "org.tio.Error.InvalidState");
    // A kernel failure is Kernel, changes nothing, and the retry succeeds.
    auto b = g.AddDevice(kB, {});
    DeviceClient db(*conn, b);
    EXPECT_FALSE(db.Attached()) << "AddDevice only opens";
    auto b_fd = db.GetVfioFd();
    ASSERT_TRUE(vmm.kvm().addVfioFile(b_fd.get()));
    sim.injectFailure("IOMMU_HWPT_ALLOC", 1, "ENOMEM");
    try {
        db.Attach();
        ADD_FAILURE() << "the injected failure was not reported";
    } catch (const sdbus::Error& e) {
        EXPECT_EQ(e.getName(), "org.tio.Error.Kernel");
        EXPECT_EQ(e.getMessage(), "IOMMU_HWPT_ALLOC failed: ENOMEM");
    }
    EXPECT_FALSE(db.Attached());
    EXPECT_NO_THROW(db.Attach());
    EXPECT_TRUE(db.Attached());
    EXPECT_EQ(errorName([&] { db.Attach(); }), "org.tio.Error.InvalidState");
    for (const char* bdf : {"", "0000:3a:00", "0000:3a:00.8", "../../etc", "0000:3a:00.0\n"}) {
        EXPECT_EQ(errorName([&] { g.AddDevice(bdf, {}); }), "org.tio.Error.InvalidArgument") << bdf;
    }
    EXPECT_EQ(errorName([&] { g.AddDevice("0000:99:00.0", {}); }), "org.tio.Error.NotFound");
    for (const char* token : {"", "not-a-uuid", "5f4dcc3b-5aa7-45d8-a1b2-0123456789"}) {
        EXPECT_EQ(errorName([&] {
                      g.AddDevice(kA, {{"vf-token", sdbus::Variant(std::string(token))}});
                  }),
                  "org.tio.Error.InvalidArgument")
            << token;
    }
    EXPECT_EQ(errorName([&] {
                  g.AddDevice(kA, {{"vf-token", sdbus::Variant(1)}});
              }),
              "org.tio.Error.InvalidArgument")
        << "vf-token must be s";
    EXPECT_EQ(errorName([&] {
                  g.AddDevice(kA, {{"type", sdbus::Variant(std::string("x"))}});
              }),
              "org.tio.Error.InvalidArgument")
        << "AddDevice takes no type";
    sdbus::UnixFd gmem(vmm.kvm().guestMemory(kGpa, 8ULL << 20U)->get());
    EXPECT_EQ(errorName([&] {
                  g.AddMemory(kGpa, 4096, gmem, 0, "shared", {{"shared-fd", sdbus::Variant(1)}});
              }),
              "org.tio.Error.InvalidArgument")
        << "shared-fd must be h";
    EXPECT_EQ(errorName([&] {
                  g.AddMemory(kGpa, 4096, gmem, 0, "shared", {{"shared-offset", sdbus::Variant(std::uint64_t{0})}});
              }),
              "org.tio.Error.InvalidArgument")
        << "shared-offset without shared-fd";
    EXPECT_EQ(errorName([&] {
                  g.AddMemory(kGpa, 4096, gmem, 0, "shared", {{"shared-fd", sdbus::Variant(gmem)}});
              }),
              "org.tio.Error.InvalidArgument")
        << "in place, a shared backing has no use";
    EXPECT_EQ(errorName([&] { g.AddMemory(kGpa, 4096, gmem, 0, "secret", {}); }), "org.tio.Error.InvalidArgument");
    EXPECT_EQ(errorName([&] { g.AddMemory(kGpa + 1, 4096, gmem, 0, "shared", {}); }), "org.tio.Error.InvalidArgument");
    EXPECT_EQ(errorName([&] { g.AddMemory(0xfffffffffffff000ULL, 0x2000, gmem, 0, "shared", {}); }),
              "org.tio.Error.InvalidArgument");
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    sdbus::UnixFd pipe_r(p[0], sdbus::adopt_fd), pipe_w(p[1], sdbus::adopt_fd);
    EXPECT_EQ(errorName([&] { g.AddMemory(kGpa, 4096, pipe_r, 0, "shared", {}); }), "org.tio.Error.InvalidArgument");
    sdbus::UnixFd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC), sdbus::adopt_fd);
    EXPECT_EQ(errorName([&] { g.AddMemory(kGpa, 4096, null_fd, 0, "shared", {}); }), "org.tio.Error.InvalidArgument");
    EXPECT_EQ(errorName([&] { g.CreateVIommu("/org/tio/Guest1/device/0000_3c_00_0", {}); }), "org.tio.Error.NotFound");
    auto dev = vmm.addDevice(*conn, g, kA);
    EXPECT_EQ(errorName([&] { g.AddDevice(kA, {}); }), "org.tio.Error.Busy");
    // A device path names a device only spelled exactly as published: no separator aliases.
    for (const char* alias : {"/org/tio/Guest1/device/0000X3aY00Z0", "/org/tio/Guest1/device/0000_3A_00_0"}) {
        EXPECT_EQ(errorName([&] { g.CreateVIommu(alias, {}); }), "org.tio.Error.NotFound") << alias;
    }
    DeviceClient d(*conn, dev);
    EXPECT_EQ(errorName([&] { d.Bind(); }), "org.tio.Error.InvalidState");
    EXPECT_EQ(errorName([&] { d.GuestRequest("gossip", {0x02}); }), "org.tio.Error.InvalidArgument");
    // Huge arrays: refused by count before anything is held.
    EXPECT_EQ(errorName([&] { d.GuestRequest("info", std::vector<uint8_t>(1U << 20U, 0x81)); }),
              "org.tio.Error.InvalidArgument");
    std::map<std::string, sdbus::Variant> many;
    for (int i = 0; i < 1000; ++i) many.emplace("o" + std::to_string(i), sdbus::Variant(i));
    EXPECT_EQ(errorName([&] { g.AddDevice(kB, many); }), "org.tio.Error.InvalidArgument") << "too many options";
    EXPECT_EQ(errorName([&] { d.CreateVDevice("/org/tio/Guest1/viommu/999", 1); }), "org.tio.Error.NotFound");
    // Objects that do not exist are not served at all: no existence oracle.
    DeviceClient ghost(*conn, "/org/tio/Guest1/device/0000_3c_00_0");
    EXPECT_EQ(errorName([&] { ghost.Bind(); }), "org.freedesktop.DBus.Error.UnknownObject");
    EXPECT_EQ(errorName([&] { (void)ghost.TdiState(); }), "org.freedesktop.DBus.Error.UnknownObject");
    conn->leaveEventLoop();
}

TEST_F(ServiceTest, ConversionsAndPunchHoleOverDBus) {
    auto conn = connect();
    GuestClient g(*conn);
    vmm.attachVm(g);
    auto region = vmm.addMemory(g, kGpa, 64ULL << 20U, "private");
    (void)vmm.addDevice(*conn, g, kA);
    EXPECT_EQ(g.PrivateBytes(), 64ULL << 20U);
    EXPECT_EQ(sim.dma(kA, sim.sharedIova(kGpa), 4096, false), "iommu-fault")
        << "TDX: private is not on the shared side";

    g.ConvertMemory(kGpa, 2ULL << 20U, "shared");
    EXPECT_EQ(sim.dma(kA, sim.sharedIova(kGpa), 2ULL << 20U, true), "ok");
    g.ConvertMemoryRanges({{kGpa + (8ULL << 20U), 4096, "shared"}, {kGpa + (9ULL << 20U), 8192, "shared"}});
    EXPECT_EQ(g.SharedBytes(), (2ULL << 20U) + 3 * 4096);
    EXPECT_EQ(g.Conversions(), 3U);

    // All or nothing: the second range is not guest memory, so the first did not happen.
    EXPECT_EQ(errorName([&] {
                  g.ConvertMemoryRanges({{kGpa + (16ULL << 20U), 4096, "shared"}, {0, 4096, "shared"}});
              }),
              "org.tio.Error.InvalidArgument");
    EXPECT_EQ(errorName([&] { g.ConvertMemory(kGpa, 4096, "public"); }), "org.tio.Error.InvalidArgument");
    EXPECT_EQ(errorName([&] { g.ConvertMemory(kGpa + 1, 4096, "private"); }), "org.tio.Error.InvalidArgument");
    EXPECT_EQ(errorName([&] { g.ConvertMemoryRanges({}); }), "org.tio.Error.InvalidArgument");
    EXPECT_EQ(errorName([&] { g.PunchHole(kGpa + (64ULL << 20U), 4096); }), "org.tio.Error.InvalidArgument");
    sim.injectFailure("KVM_SET_MEMORY_ATTRIBUTES2", 1, "ENOMEM");
    EXPECT_EQ(errorName([&] { g.ConvertMemory(kGpa + (20ULL << 20U), 4096, "shared"); }), "org.tio.Error.Kernel");
    EXPECT_EQ(g.SharedBytes(), (2ULL << 20U) + 3 * 4096);
    EXPECT_EQ(g.Conversions(), 3U);

    // PunchHole on shared memory: the mapping goes first, the VMM hears of it, then the hole.
    const auto punched_before = sim.counter("gmem_punched_pages");
    g.PunchHole(kGpa + 4096, 3 * 4096);
    EXPECT_TRUE(eventually([&] {
        std::lock_guard l(g.mu);
        return g.revoked.size() == 1;
    }));
    {
        std::lock_guard l(g.mu);
        EXPECT_EQ(g.revoked[0], std::make_tuple(kGpa + 4096, std::uint64_t{3 * 4096}, std::string("punch-hole")));
    }
    EXPECT_EQ(sim.counter("gmem_punched_pages") - punched_before, 3U);
    EXPECT_EQ(sim.counter("gmem_violations"), 0U);
    EXPECT_EQ(g.Revocations(), 1U);
    EXPECT_EQ(sim.dma(kA, sim.sharedIova(kGpa + 4096), 4096, false), "iommu-fault");
    EXPECT_EQ(sim.dma(kA, sim.sharedIova(kGpa), 4096, false), "ok") << "the neighbour kept its mapping";
    auto props = sdbus::createProxy(*conn, "org.tio.Guest1.vm1", region);
    EXPECT_TRUE(props->getProperty("Revoked").onInterface("org.tio.Memory1").get<bool>());
    EXPECT_TRUE(props->getProperty("SharedMapped").onInterface("org.tio.Memory1").get<bool>());
    EXPECT_EQ(props->getProperty("PinnedBytes").onInterface("org.tio.Memory1").get<std::uint64_t>(),
              (2ULL << 20U) + 3 * 4096 - 3 * 4096)
        << "what the IOMMU maps: the shared pages less the revoked ones";
    // A punch in private memory on TDX revokes nothing: nothing maps it.
    g.PunchHole(kGpa + (32ULL << 20U), 4096);
    EXPECT_EQ(g.Revocations(), 1U);
    EXPECT_EQ(sim.counter("machine_checks"), 0U);
}

TEST_F(ServiceTest, LastDisconnectTearsDownFromEveryStep) {
    for (int k = 1; k <= 7; ++k) {
        SCOPED_TRACE("disconnect after step " + std::to_string(k));
        {
            auto conn = connect();
            GuestClient g(*conn);
            int step = 0;
            auto more = [&] { return ++step <= k; };
            std::optional<sdbus::ObjectPath> dev, viommu;
            if (more()) vmm.attachVm(g);
            if (more()) (void)vmm.addMemory(g, kGpa, 8ULL << 20U, "shared");
            if (more()) dev = vmm.addDevice(*conn, g, kA);
            if (more()) viommu = g.CreateVIommu(*dev, {});
            std::optional<DeviceClient> d;
            if (dev) d.emplace(*conn, *dev);
            if (more()) d->CreateVDevice(*viommu, 7);
            if (more()) d->Bind();
            if (more()) (void)d->GuestRequest("state-change", {0x02});
            conn->leaveEventLoop();
        }
        vmm.exit();
        EXPECT_TRUE(kernelEmpty()) << "objects=" << sim.counter("objects") << " files=" << sim.counter("open_files");
        EXPECT_EQ(sim.tdiState(kA), "unlocked");
    }
}

TEST_F(ServiceTest, AConfigWriteBehindTheDaemonsBackIsAFault) {
    auto conn = connect();
    GuestClient g(*conn);
    vmm.attachVm(g);
    auto dev_path = vmm.addDevice(*conn, g, kA);
    DeviceClient dev(*conn, dev_path);
    auto viommu = g.CreateVIommu(dev_path, {});
    dev.CreateVDevice(viommu, 1);
    dev.Bind();
    (void)dev.GuestRequest("state-change", {0x02});
    sim.configWrite(kA);  // the host touched the device: TDISP moves the TDI to ERROR
    // The very next read says so (the watch may not have looked yet), and the change
    // the daemon did not make is signalled.
    EXPECT_EQ(dev.TdiState(), "error");
    EXPECT_TRUE(eventually([&] {
        std::lock_guard l(g.mu);
        return g.faults == std::vector<std::string>{std::string(dev_path) + " tdi-error"};
    })) << "Fault signal";
    EXPECT_TRUE(eventually([&] {
        std::lock_guard l(dev.mu);
        return !dev.tdi_changes.empty() && dev.tdi_changes.back() == "error";
    })) << "PropertiesChanged(TdiState)";
    dev.Unbind();
    EXPECT_EQ(dev.TdiState(), "unlocked");
    conn->leaveEventLoop();
}

TEST_F(ServiceTest, FdsPassedInAreNeverLeakedOnErrorPaths) {
    auto conn = connect();
    GuestClient g(*conn);
    vmm.attachVm(g);
    sdbus::UnixFd gmem(vmm.kvm().guestMemory(kGpa, 4ULL << 20U)->get());
    // sd-bus keeps the message it handled last (and so the fds in it) until the next
    // one: a harmless call before each count, so what is counted is what the daemon
    // itself holds.
    (void)g.State();
    const auto before = daemon->openFds();
    for (int i = 0; i < 20; ++i) {
        int p[2];
        ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
        sdbus::UnixFd r(p[0], sdbus::adopt_fd), w(p[1], sdbus::adopt_fd);
        EXPECT_EQ(errorName([&] { g.AddMemory(kGpa, 4096, r, 0, "shared", {}); }), "org.tio.Error.InvalidArgument");
        EXPECT_EQ(errorName([&] { g.AddMemory(kGpa, 8ULL << 20U, gmem, 0, "shared", {}); }),
                  "org.tio.Error.InvalidArgument")
            << "beyond the guest_memfd";
        EXPECT_EQ(errorName([&] { g.AddMemory(kGpa, 4096, gmem, 0, "sideways", {}); }),
                  "org.tio.Error.InvalidArgument");
        EXPECT_EQ(errorName([&] { g.AttachVm(r, {}); }), "org.tio.Error.InvalidState");
        EXPECT_EQ(errorName([&] {
                      g.AddMemory(kGpa, 4096, gmem, 0, "shared", {{"shared-fd", sdbus::Variant(r)}});
                  }),
                  "org.tio.Error.InvalidArgument")
            << "a shared-fd on an in-place kernel";
    }
    (void)g.State();
    EXPECT_EQ(daemon->openFds(), before) << "every fd that came in with a failed call was closed";
    conn->leaveEventLoop();
}

TEST_F(ServiceTest, AttachVmTakesAVmByTheKernelsNameForIt) {
    auto conn = connect();
    GuestClient g(*conn);
    sdbus::UnixFd gmem(vmm.kvm().guestMemfd(4ULL << 20U)->get());
    EXPECT_EQ(errorName([&] { g.AttachVm(gmem, {}); }), "org.tio.Error.InvalidArgument") << "a guest_memfd";
    sdbus::UnixFd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC), sdbus::adopt_fd);
    EXPECT_EQ(errorName([&] { g.AttachVm(null_fd, {}); }), "org.tio.Error.InvalidArgument") << "/dev/null";
    EXPECT_EQ(g.State(), "empty");
    vmm.attachVm(g, "tdx");
    EXPECT_EQ(g.State(), "active");
    EXPECT_EQ(g.VmType(), "tdx");
    conn->leaveEventLoop();
}

// A VM is one guest's, host-wide, as a device is: another guest's daemon (here on
// the same host and simulator) gets Busy for a VM the first holds, and the VM once
// the first lets it go.
TEST_F(ServiceTest, AVmHeldByOneGuestIsBusyForAnother) {
    DaemonProcess other(sim, "vm2", bus.address());
    auto c1 = connect();
    auto c2 = sdbus::createSessionBusConnectionWithAddress(other.address());
    c2->enterEventLoopAsync();
    GuestClient g1(*c1);
    GuestClient g2(*c2);
    const sdbus::UnixFd vm = vmm.vmFd("tdx");
    g1.AttachVm(vm, {{"type", sdbus::Variant(std::string("tdx"))}});
    EXPECT_EQ(errorName([&] {
                  g2.AttachVm(vm, {{"type", sdbus::Variant(std::string("tdx"))}});
              }),
              "org.tio.Error.Busy");
    EXPECT_EQ(g2.State(), "empty");
    VmmClient second_vmm(sim);  // another VMM: a VM of its own is no one else's
    second_vmm.attachVm(g2, "tdx");
    EXPECT_EQ(g2.State(), "active");
    g2.Teardown();
    g1.Teardown();
    EXPECT_EQ(g1.State(), "empty");
    g2.AttachVm(vm, {{"type", sdbus::Variant(std::string("tdx"))}});
    EXPECT_EQ(g2.State(), "active") << "released with the guest that held it";
    c1->leaveEventLoop();
    c2->leaveEventLoop();
}

TEST_F(ServiceTest, TwoVmmConnectionsShareTheGuest) {
    auto c1 = connect();
    auto c2 = connect();
    GuestClient g1(*c1);
    auto g2 = std::make_unique<GuestClient>(*c2);
    EXPECT_TRUE(eventually([&] { return g1.Clients() == 2U; }));
    vmm.attachVm(g1);
    auto dev = g2->AddDevice(kB, {});
    EXPECT_EQ(g1.Devices(), std::vector<sdbus::ObjectPath>{dev});
    g2.reset();  // a proxy never outlives its connection
    c2->leaveEventLoop();
    c2.reset();
    EXPECT_TRUE(eventually([&] { return g1.Clients() == 1U; }));
    EXPECT_EQ(g1.State(), "active") << "one VMM connection is still there";
    c1->leaveEventLoop();
}

TEST_F(ServiceTest, ASecondGuestCannotClaimAHeldDevice) {
    DaemonProcess other(sim, "vm2", "");
    auto c1 = connect();
    GuestClient g1(*c1);
    vmm.attachVm(g1);
    (void)g1.AddDevice(kA, {});
    auto c2 = sdbus::createSessionBusConnectionWithAddress(other.address());
    GuestClient g2(*c2, "vm2");
    VmmClient vmm2{sim};
    vmm2.attachVm(g2);
    EXPECT_EQ(errorName([&] { g2.AddDevice(kA, {}); }), "org.tio.Error.Busy");
    EXPECT_NO_THROW(g2.AddDevice(kB, {}));
    c1->leaveEventLoop();
}

TEST_F(ServiceTest, PolicyLimitsAndAllowlist) {
    const std::string policy = sim.dir() + "/policy.json";
    std::ofstream(policy) << R"({"version": 1, "guests": {"vm3": {"owners": {"uids": [0]},
        "devices": ["0000:3b:00.*"], "limits": {"devices": 1, "memory_regions": 1}}}})";
    DaemonProcess restricted(sim, "vm3", "", {"--policy", policy});
    auto c = sdbus::createSessionBusConnectionWithAddress(restricted.address());
    GuestClient g(*c, "vm3");
    vmm.attachVm(g);
    EXPECT_EQ(errorName([&] { g.AddDevice(kA, {}); }), "org.tio.Error.AccessDenied") << "not in the allowlist";
    EXPECT_NO_THROW(g.AddDevice(kB, {}));
    auto gmem_fd = vmm.kvm().guestMemfd(8ULL << 20U);
    ASSERT_TRUE(gmem_fd);
    ASSERT_TRUE(vmm.kvm().bindMemory(kGpa, 8ULL << 20U, gmem_fd->get()));
    sdbus::UnixFd gmem(gmem_fd->get());
    EXPECT_NO_THROW(g.AddMemory(kGpa, 4ULL << 20U, gmem, 0, "shared", {}));
    EXPECT_EQ(errorName([&] { g.AddMemory(kGpa + (4ULL << 20U), 4ULL << 20U, gmem, 4ULL << 20U, "shared", {}); }),
              "org.tio.Error.LimitExceeded");
}

// The simulated kernel crashes: the VMM hears it at once (Fault, "kernel-gone") rather
// than at its next call, and the calls that follow fail with a name.
TEST_F(ServiceTest, TheVmmHearsWhenItsKernelGoesAway) {
    auto conn = connect();
    GuestClient g(*conn);
    vmm.attachVm(g);
    sim.kill9();
    EXPECT_TRUE(eventually([&] {
        std::lock_guard l(g.mu);
        return std::find(g.faults.begin(), g.faults.end(), "/org/tio/Guest1 kernel-gone") != g.faults.end();
    })) << "Fault signal";
    EXPECT_EQ(errorName([&] { g.AddDevice(kA, {}); }), "org.tio.Error.Kernel");
    conn->leaveEventLoop();
}

// A caller can provoke refusals at will: the audit log takes at most a burst of them
// per uid and window (journald's rate limit), and the calls are still refused.
TEST_F(ServiceTest, RefusalRecordsAreRateLimited) {
    const std::string policy = sim.dir() + "/flood.json";
    std::ofstream(policy) << R"({"version": 1, "guests": {"vm6": {"owners": {"uids": [0]},
        "devices": ["0000:3b:00.*"]}}})";
    DaemonProcess d(sim, "vm6", "", {"--policy", policy, "--state-dir", sim.dir()});
    auto c = sdbus::createSessionBusConnectionWithAddress(d.address());
    GuestClient g(*c, "vm6");
    vmm.attachVm(g);
    for (int i = 0; i < 100; ++i) {
        ASSERT_EQ(errorName([&] { g.AddDevice(kA, {}); }), "org.tio.Error.AccessDenied") << i;
    }
    (void)g.State();  // a round trip: every record of the calls before is written
    auto all = audit::readAuditLog(sim.dir() + "/audit/vm6.log");
    ASSERT_TRUE(all);
    const auto refused = std::count_if(all->begin(), all->end(), [](const auto& r) { return r.event() == "refused"; });
    EXPECT_EQ(refused, 20) << "the burst, and not one record more";
}

TEST_F(ServiceTest, SighupAppliesAValidPolicyReportsWhatItNoLongerAllowsAndRefusesAnInvalidOne) {
    const std::string policy = sim.dir() + "/reload.json";
    auto write = [&](const std::string& text) {
        std::ofstream(policy + ".new") << text;
        std::filesystem::rename(policy + ".new", policy);
    };
    write(R"({"version": 1, "guests": {"vm4": {"owners": {"uids": [0]}, "platform": "sim-tdx",
        "devices": ["0000:3a:00.0", "0000:3b:00.0"], "limits": {"conversions_per_second": 3}}}})");
    DaemonProcess d(sim, "vm4", "", {"--policy", policy, "--state-dir", sim.dir(), DaemonProcess::kPlatformFromPolicy});
    const std::string audit_path = sim.dir() + "/audit/vm4.log";
    auto audited = [&](const std::string& event) {
        auto all = audit::readAuditLog(audit_path);
        return all && std::any_of(all->begin(), all->end(), [&](const auto& r) { return r.event() == event; });
    };
    auto c = sdbus::createSessionBusConnectionWithAddress(d.address());
    c->enterEventLoopAsync();
    GuestClient g(*c, "vm4");
    EXPECT_EQ(g.Platform(), "tdx") << "the platform came from the policy";
    vmm.attachVm(g);
    (void)vmm.addMemory(g, kGpa, 8ULL << 20U, "private");
    EXPECT_EQ(errorName([&] {
                  g.ConvertMemoryRanges({{kGpa, 4096, "shared"},
                                         {kGpa + 8192, 4096, "shared"},
                                         {kGpa + 16384, 4096, "shared"},
                                         {kGpa + 32768, 4096, "shared"}});
              }),
              "org.tio.Error.LimitExceeded")
        << "four ranges against a budget of three per second";
    EXPECT_EQ(g.SharedBytes(), 0U);
    const auto dev_a = g.AddDevice(kA, {});

    // The new policy drops A: it stays assigned, and the VMM hears of it.
    write(R"({"version": 1, "guests": {"vm4": {"owners": {"uids": [0]}, "platform": "sim-tdx",
        "devices": ["0000:3b:00.0"]}}})");
    ASSERT_EQ(::kill(d.pid(), SIGHUP), 0);
    EXPECT_TRUE(eventually([&] {
        std::lock_guard l(g.mu);
        return std::find(g.faults.begin(), g.faults.end(), std::string(dev_a) + " policy") != g.faults.end();
    })) << "Fault(policy) for the device the policy no longer allows";
    EXPECT_EQ(g.Devices().size(), 1U) << "not torn down";
    EXPECT_EQ(sim.tdiState(kA), "unlocked");

    EXPECT_TRUE(audited("policy-reloaded"));
    EXPECT_TRUE(audited("policy-violation"));

    // An invalid file is refused; the last valid policy stays in force.
    write(R"({"version": 1, "guests": {"vm4": {"devices": ["0000:3a:00.0"], "colour": "blue"}}})");
    ASSERT_EQ(::kill(d.pid(), SIGHUP), 0);
    EXPECT_TRUE(eventually([&] { return audited("policy-refused"); }));
    EXPECT_NO_THROW(g.AddDevice(kB, {})) << "B is allowed by the policy in force, not by the refused one";
    EXPECT_EQ(g.Devices().size(), 2U);
    EXPECT_EQ(errorName([&] { g.AddDevice("0000:3c:00.0", {}); }), "org.tio.Error.AccessDenied");

    // Every assignment change and the refusal are records, with the caller.
    auto all = audit::readAuditLog(audit_path);
    ASSERT_TRUE(all);
    std::vector<std::string> events;
    for (const auto& r : *all) {
        events.push_back(r.event() + (r.object().empty() ? "" : " " + r.object()));
        EXPECT_EQ(r.guest(), "vm4");
    }
    for (const char* e :
         {"vm-attached", "device-assigned 0000:3a:00.0", "device-assigned 0000:3b:00.0", "refused 0000:3c:00.0"}) {
        EXPECT_NE(std::find(events.begin(), events.end(), e), events.end()) << e;
    }
    const auto refused = std::find_if(all->begin(), all->end(), [](const auto& r) { return r.event() == "refused"; });
    ASSERT_NE(refused, all->end());
    EXPECT_TRUE(refused->has_peer());
    EXPECT_EQ(refused->peer_uid(), 0U);
    EXPECT_EQ(refused->error(), "org.tio.Error.AccessDenied");
    c->leaveEventLoop();
}

TEST_F(ServiceTest, SigtermUnwindsAndExitsCleanly) {
    {
        // No async event loop here: sdbus-c++ 1.2's loop thread throws (and so
        // terminates) when the server goes away under it.
        auto conn = sdbus::createSessionBusConnectionWithAddress(daemon->address());
        GuestClient g(*conn);
        vmm.attachVm(g);
        (void)vmm.addDevice(*conn, g, kA);
        const int status = daemon->stop();
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    }
    vmm.exit();
    EXPECT_TRUE(kernelEmpty());
}

// TdiState and TsmConnected are what the kernel says at the time of the read, and a
// read costs at most one kernel call per device and message: GetManagedObjects on a
// guest of 64 TDISP devices asks the kernel 64 times, not 128 (two such properties
// each), and not 0 (a cached guess).
TEST(ServiceReads, ManagedObjectsCostOneKernelCallPerDevice) {
    constexpr int kDevices = 64;
    std::vector<std::string> functions;
    std::string allow;
    for (int i = 0; i < kDevices; ++i) {
        char bdf[16];
        std::snprintf(bdf, sizeof bdf, "0000:%02x:%02x.0", 0x40 + i / 32, i % 32);
        functions.emplace_back(bdf);
        allow += std::string(allow.empty() ? "" : ", ") + "\"" + bdf + "\"";
    }
    SimProcess sim{"tdx", functions};
    const std::string policy = sim.dir() + "/policy.json";
    std::ofstream(policy) << R"({"version": 1, "guests": {"vm5": {"owners": {"uids": [0]}, "devices": [)" << allow
                          << R"(], "limits": {"devices": 64}}}})";
    DaemonProcess daemon(sim, "vm5", "", {"--policy", policy});
    auto conn = sdbus::createSessionBusConnectionWithAddress(daemon.address());
    GuestClient g(*conn, "vm5");
    VmmClient vmm{sim};
    vmm.attachVm(g);
    for (const auto& bdf : functions) (void)g.AddDevice(bdf, {});
    // The once-a-second watch may add a round of its own to one try: take the least.
    std::uint64_t least = ~std::uint64_t{0};
    for (int attempt = 0; attempt < 4; ++attempt) {
        const auto before = sim.counter("syscalls");
        const auto objects = g.GetManagedObjects();
        least = std::min(least, sim.counter("syscalls") - before);
        EXPECT_EQ(objects.size(), std::size_t{kDevices}) << "the devices under the manager";
    }
    EXPECT_EQ(least, std::uint64_t{kDevices});
}

}  // namespace
}  // namespace tio::test
