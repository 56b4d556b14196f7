// tio-vmm-demo: what a VMM does with tio-manager, step by step, printing each one.
// It walks the whole lifecycle of architecture.md section 5 over the guest socket
// with the sdbus-c++ proxies generated from the introspection XML. Like a real VMM
// it creates its VM, guest_memfd, memslots and KVM-VFIO device itself (a KVM VM
// answers only the process that created it), here on the simulator's /dev/kvm
// (--sim-kernel), and hands the daemon duplicates: AttachVm, AddMemory, device
// Attach after its KVM_DEV_VFIO_FILE_ADD, vIOMMU, vDEVICE, TSM bind, the guest's RUN
// request, conversions, simulated device DMA (asked of tio-simkernel's control
// door), unbind, teardown.
#include <unistd.h>

#include <sdbus-c++/sdbus-c++.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/bus_names.hpp"
#include "kernel/sim/sim_syscalls.hpp"
#include "tio/Device1-proxy.h"
#include "tio/Guest1-proxy.h"
#include "tio/Memory1-proxy.h"
#include "tio/Sim1-proxy.h"
#include "tio/VIommu1-proxy.h"
#include "vmm/kvm_vmm.hpp"

namespace {

// The guest's bus name. On p2p it is not used for routing, but sdbus-c++ matches
// signals on sender=<destination>, and tio-managerd sends as org.tio.Guest1.GUEST.
std::string service = tio::guestBusName("vm1");

class Guest final : public sdbus::ProxyInterfaces<org::tio::Guest1_proxy> {
public:
    Guest(sdbus::IConnection& c) : ProxyInterfaces(c, service, "/org/tio/Guest1") { registerProxy(); }
    ~Guest() { unregisterProxy(); }

private:
    void onMemoryRevoked(const uint64_t& gpa, const uint64_t& size, const std::string& reason) override {
        std::printf("    signal MemoryRevoked gpa=0x%llx size=0x%llx (%s)\n", static_cast<unsigned long long>(gpa),
                    static_cast<unsigned long long>(size), reason.c_str());
    }
    void onFault(const sdbus::ObjectPath& object, const std::string& kind, const std::string& detail) override {
        std::printf("    signal Fault %s %s: %s\n", object.c_str(), kind.c_str(), detail.c_str());
    }
};

template <typename Iface>
class Child final : public sdbus::ProxyInterfaces<Iface> {
public:
    Child(sdbus::IConnection& c, const std::string& path) : sdbus::ProxyInterfaces<Iface>(c, service, path) {
        this->registerProxy();
    }
    ~Child() { this->unregisterProxy(); }
};

class Sim final : public sdbus::ProxyInterfaces<org::tio::Sim1_proxy> {
public:
    Sim(sdbus::IConnection& c) : ProxyInterfaces(c, "org.tio.Sim1", "/org/tio/Sim1") { registerProxy(); }
    ~Sim() { unregisterProxy(); }
};

int step = 0;
void say(const std::string& what) { std::printf("[%2d] %s\n", ++step, what.c_str()); }

template <typename T>
T must(tio::Result<T> r, const char* what) {
    if (!r) throw std::runtime_error(std::string(what) + ": " + r.error().message);
    return std::move(*r);
}
void must(tio::Result<> r, const char* what) {
    if (!r) throw std::runtime_error(std::string(what) + ": " + r.error().message);
}

}  // namespace

int main(int argc, char** argv) {
    std::string socket, sim_control, sim_kernel, bdf = "0000:3a:00.0", on_run;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string k = argv[i];
        if (k == "--socket") socket = argv[i + 1];
        else if (k == "--sim-control") sim_control = argv[i + 1];
        else if (k == "--sim-kernel") sim_kernel = argv[i + 1];
        else if (k == "--device") bdf = argv[i + 1];
        else if (k == "--on-run") on_run = argv[i + 1];
        else if (k == "--guest") service = tio::guestBusName(argv[i + 1]);
        else {
            std::fprintf(stderr, "unknown option %s\n", k.c_str());
            return 2;
        }
    }
    if (socket.empty() || sim_kernel.empty()) {
        std::fprintf(stderr,
                     "usage: tio-vmm-demo --socket GUEST_SOCKET --sim-kernel KERNEL_SOCKET [--guest NAME]\n"
                     "                    [--sim-control PATH] [--device BDF] [--on-run CMD]\n");
        return 2;
    }
    try {
        auto conn = sdbus::createSessionBusConnectionWithAddress("unix:path=" + socket);
        conn->enterEventLoopAsync();  // signals
        Guest guest(*conn);
        std::unique_ptr<sdbus::IConnection> sim_conn;
        std::unique_ptr<Sim> sim;
        if (!sim_control.empty()) {
            sim_conn = sdbus::createSessionBusConnectionWithAddress("unix:path=" + sim_control);
            sim = std::make_unique<Sim>(*sim_conn);
        }
        auto dma = [&](uint64_t iova, uint64_t size) {
            if (sim)
                std::printf("    device DMA write to iova 0x%llx+0x%llx: %s\n", static_cast<unsigned long long>(iova),
                            static_cast<unsigned long long>(size), sim->Dma(bdf, iova, size, true).c_str());
        };

        const std::string platform = guest.Platform();
        // Where a device reaches shared memory: TDX and CCA DMA addresses carry the
        // shared alias bit (bit 47 for a 48-bit guest), SNP uses the GPA itself;
        // private memory is reached without it, by a TDI in RUN only.
        const uint64_t shared_bit = platform == "snp" ? 0 : (1ULL << 47U);
        say("guest " + guest.Name() + " on " + platform + " (" + guest.Backend() + "), state " + guest.State());
        // The VMM's own KVM: the VM is ours, and only we may issue its ioctls.
        auto connected = tio::kernel::SimSyscalls::connect(sim_kernel);
        if (!connected) throw std::runtime_error("cannot reach the simulated kernel at " + sim_kernel);
        auto kernel = std::move(*connected);
        auto kvm = must(tio::vmm::Kvm::open(*kernel), "open /dev/kvm");
        auto vm = must(kvm.createVm(tio::kernel::VmType::Default), "KVM_CREATE_VM");
        guest.AttachVm(sdbus::UnixFd(vm.fd()), {{"type", sdbus::Variant(std::string("default"))}});
        say("KVM_CREATE_VM here, then AttachVm: state " + guest.State() + ", memory model " + guest.MemoryModel());
        constexpr uint64_t kGpa = 0x100000000ULL;
        auto gmem = must(vm.createGuestMemfd(64ULL << 20U, {}), "KVM_CREATE_GUEST_MEMFD");
        must(vm.setMemslot(0, kGpa, 64ULL << 20U, gmem.fd(), 0), "KVM_SET_USER_MEMORY_REGION2");
        say("KVM_CREATE_GUEST_MEMFD (64 MiB) and its memslot at 0x100000000, here");
        sdbus::UnixFd gmem_fd(gmem.fd());
        auto shared = guest.AddMemory(kGpa, 32ULL << 20U, gmem_fd, 0, "shared", {});
        auto priv = guest.AddMemory(kGpa + (32ULL << 20U), 32ULL << 20U, gmem_fd, 32ULL << 20U, "private", {});
        say("AddMemory: " + std::string(shared) + " (shared), " + std::string(priv) + " (private); shared bytes " +
            std::to_string(guest.SharedBytes()) + ", private bytes " + std::to_string(guest.PrivateBytes()));
        auto dev_path = guest.AddDevice(bdf, {});
        Child<org::tio::Device1_proxy> dev(*conn, dev_path);
        say("AddDevice(" + bdf + "): " + std::string(dev_path) + " as " + dev.VfioDevice() + ", attached " +
            std::to_string(dev.Attached()));
        auto kvm_vfio = must(vm.createVfioDevice(), "KVM_CREATE_DEVICE(VFIO)");
        auto vfio = dev.GetVfioFd();
        must(kvm_vfio.addFile(vfio.get()), "KVM_DEV_VFIO_FILE_ADD");
        dev.Attach();
        say("GetVfioFd, KVM_DEV_VFIO_FILE_ADD here, then Attach: attached " + std::to_string(dev.Attached()) +
            ", TDI " + dev.TdiState());
        dma(kGpa | shared_bit, 4096);
        auto viommu_path = guest.CreateVIommu(dev_path, {});
        Child<org::tio::VIommu1_proxy> viommu(*conn, viommu_path);
        say("CreateVIommu: " + std::string(viommu_path) + " type " + viommu.Type());
        dev.CreateVDevice(viommu_path, 0x42);
        say("CreateVDevice(virtual id 0x42), which binds on a TSM vIOMMU: HasVDevice " +
            std::to_string(dev.HasVDevice()) + ", TSM connected " + std::to_string(dev.TsmConnected()) + ", TDI " +
            dev.TdiState());
        dev.Bind();
        say("Bind (TDISP LOCK through the TSM): TDI " + dev.TdiState());
        const auto [report, generation] = dev.GetEvidence("interface-report");
        const std::string head(report.begin(), std::find(report.begin(), report.end(), '\n'));
        say("GetEvidence(interface-report): " + std::to_string(report.size()) + " bytes, generation " +
            std::to_string(generation) + ": \"" + head + "\"");
        const auto tsm_code = std::get<1>(dev.TsmRequest("set-tdi-state", {0x02}));
        say("TsmRequest(set-tdi-state, RUN): tsm_code " + std::to_string(tsm_code) + ", TDI " + dev.TdiState());
        dma((kGpa + 4096) | shared_bit, 64ULL * 1024);
        dma(kGpa + (40ULL << 20U), 4096);  // private memory, by the TDI in RUN
        // The guest converts: 2 MiB of private memory to shared, 8 KiB of shared to
        // private; the daemon changes attribute and IOMMU in the platform's order.
        guest.ConvertMemoryRanges({{kGpa + (40ULL << 20U), 2ULL << 20U, "shared"}, {kGpa + 8192, 8192, "private"}});
        say("ConvertMemoryRanges(2 MiB to shared, 8 KiB to private): shared bytes " +
            std::to_string(guest.SharedBytes()) + ", private bytes " + std::to_string(guest.PrivateBytes()));
        dma((kGpa + (40ULL << 20U)) | shared_bit, 2ULL << 20U);
        dma((kGpa + 8192) | shared_bit, 4096);
        guest.PunchHole(kGpa + (16ULL << 20U), 4096ULL * 4);
        say("PunchHole(16 KiB of shared memory): revocations " + std::to_string(guest.Revocations()));
        dma((kGpa + (16ULL << 20U)) | shared_bit, 4096);
        if (!on_run.empty()) {
            std::fflush(stdout);
            if (std::system(on_run.c_str()) != 0) std::fprintf(stderr, "(--on-run command failed)\n");
        }
        dev.Unbind();
        say("Unbind: TDI " + dev.TdiState());
        dev.DestroyVDevice();
        viommu.Destroy();
        say("DestroyVDevice, VIommu.Destroy: vIOMMUs left " + std::to_string(guest.VIommus().size()));
        dev.Remove();
        say("Device.Remove: devices left " + std::to_string(guest.Devices().size()));
        dma(kGpa | shared_bit, 4096);
        guest.Teardown();
        say("Teardown: state " + guest.State());
        if (sim) {
            const auto c = sim->Counters();
            say("simulator: objects " + std::to_string(c.at("objects")) + ", iommu faults " +
                std::to_string(c.at("iommu_faults")) + ", machine checks " + std::to_string(c.at("machine_checks")) +
                ", rmp faults " + std::to_string(c.at("rmp_faults")) + ", IOPTE splits " +
                std::to_string(c.at("iopte_split")) + ", merges " + std::to_string(c.at("iopte_merge")));
        }
        conn->leaveEventLoop();
    } catch (const sdbus::Error& e) {
        std::fprintf(stderr, "step %d failed: %s: %s\n", step + 1, e.getName().c_str(), e.getMessage().c_str());
        return 1;
    } catch (const std::runtime_error& e) {
        std::fprintf(stderr, "step %d failed: %s\n", step + 1, e.what());
        return 1;
    }
    std::printf("demo complete\n");
    return 0;
}
