// Restart benchmark (issue 5): --guests guests share --devices TDISP devices and
// --memory-gib GiB of guest memory (defaults: 4, 100, 1024), each guest with its
// devices bound and running and its memory fragmented by --conversions random
// conversions. Every daemon runs under the service-manager harness (the fd store
// protocol, tests/support/service_manager.hpp). Measured in the same run:
//   cold start: spawn to READY=1 with nothing kept (the baseline);
//   recovery:   after SIGKILL, spawn to READY=1 with every fd and the snapshot kept,
//               the guest re-adopted and checked against the kernel.
// Prints both per guest, the ratio, and the kernel calls each made (cold / recovery:
// the simulator's count). No pass/fail on speed; exits 1 if a restart changed the
// kernel's objects or files.
//   restart_bench [--platform P] [--guests G] [--devices D] [--memory-gib M] [--conversions C]
#include <sdbus-c++/sdbus-c++.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "support/guest_client.hpp"
#include "support/service_manager.hpp"
#include "support/vmm_client.hpp"

namespace {

using namespace tio::test;

std::string bdfOf(unsigned i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "0000:%02x:%02x.0", (0x40U + i / 32U) & 0xffU, i % 32U);
    return buf;
}

}  // namespace

int main(int argc, char** argv) {
    std::string platform = "tdx";
    unsigned guests = 4, devices = 100, conversions = 2000;
    std::uint64_t memory_gib = 1024;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        const std::string v = argv[i + 1];
        if (a == "--platform") platform = v;
        else if (a == "--guests") guests = static_cast<unsigned>(std::stoul(v));
        else if (a == "--devices") devices = static_cast<unsigned>(std::stoul(v));
        else if (a == "--memory-gib") memory_gib = std::stoull(v);
        else if (a == "--conversions") conversions = static_cast<unsigned>(std::stoul(v));
        else {
            std::fprintf(stderr, "unknown option %s\n", a.c_str());
            return 2;
        }
    }
    if (guests == 0 || devices < guests || memory_gib < guests) return 2;
    std::vector<std::string> bdfs;
    for (unsigned i = 0; i < devices; ++i) bdfs.push_back(bdfOf(i));
    SimProcess sim(platform, bdfs);

    // A policy that gives each guest its share of the devices (the development
    // policy's limit is 8 devices).
    const std::string policy = sim.dir() + "/policy.json";
    {
        std::ofstream out(policy);
        out << R"({"version": 1, "guests": {)";
        for (unsigned g = 0; g < guests; ++g) {
            out << (g == 0 ? "" : ",") << "\"g" << g
                << R"(": {"owners": {"uids": [0]}, "limits": {"devices": 1024}, "devices": [)";
            bool first = true;
            for (unsigned d = g; d < devices; d += guests) {
                out << (first ? "" : ",") << '"' << bdfs[d] << '"';
                first = false;
            }
            out << "]}";
        }
        out << "}}";
    }
    const std::uint64_t per_guest = (memory_gib / guests) << 30U;
    constexpr std::uint64_t kGpa = 1ULL << 32U;
    std::vector<std::unique_ptr<ServiceManager>> managers;
    std::vector<std::unique_ptr<VmmClient>> vmms;  // each guest's VMM side, alive across the restarts
    std::vector<double> cold;
    std::vector<std::uint64_t> cold_calls;  // kernel calls (the simulator's syscalls) from spawn to READY
    std::mt19937_64 rng(7);
    for (unsigned g = 0; g < guests; ++g) {
        managers.push_back(std::make_unique<ServiceManager>(sim, "g" + std::to_string(g),
                                                            std::vector<std::string>{"--policy", policy}));
        const auto calls_before = sim.counter("syscalls");
        cold.push_back(managers.back()->start());
        cold_calls.push_back(sim.counter("syscalls") - calls_before);
        auto conn = sdbus::createSessionBusConnectionWithAddress(managers.back()->address());
        GuestClient guest(*conn, "g" + std::to_string(g));
        vmms.push_back(std::make_unique<VmmClient>(sim));
        VmmClient& vmm = *vmms.back();
        vmm.attachVm(guest);
        (void)vmm.addMemory(guest, kGpa, per_guest, "private");
        for (unsigned c = 0; c < conversions; ++c) {
            const std::uint64_t size = (rng() % 2 == 0) ? 4096 : 2ULL << 20U;
            const std::uint64_t gpa = kGpa + (rng() % (per_guest / size)) * size;
            guest.ConvertMemory(gpa, size, rng() % 2 == 0 ? "shared" : "private");
        }
        std::string viommu;
        for (unsigned d = g; d < devices; d += guests) {
            const std::string path = vmm.addDevice(*conn, guest, bdfs[d]);
            if (viommu.empty()) viommu = guest.CreateVIommu(path, {});
            DeviceClient dev(*conn, path);
            dev.CreateVDevice(viommu, d + 1);
            dev.Bind();
            (void)dev.GuestRequest("state-change", {0x02});
        }
        // The guest must outlive this connection: a restart drops VMM connections,
        // and the last one closing would tear it down; here the harness's kill comes first.
        managers.back()->kill9();
    }
    const auto objects = sim.counter("objects");
    const auto files = sim.counter("open_files");
    std::vector<double> recovery;
    std::vector<std::uint64_t> recovery_calls;
    for (auto& m : managers) {
        const auto calls_before = sim.counter("syscalls");
        recovery.push_back(m->start());
        recovery_calls.push_back(sim.counter("syscalls") - calls_before);
    }
    const bool unchanged = sim.counter("objects") == objects && sim.counter("open_files") == files;

    std::printf(
        "restart benchmark: %s, %u guests, %u devices bound and running, %llu GiB of memory, "
        "%u conversions per guest\n",
        platform.c_str(), guests, devices, static_cast<unsigned long long>(memory_gib), conversions);
    std::printf("%-8s %10s %18s %16s %10s %14s\n", "guest", "devices", "cold start (ms)", "recovery (ms)", "ratio",
                "kernel calls");
    double cold_sum = 0, rec_sum = 0;
    std::uint64_t cold_calls_sum = 0, rec_calls_sum = 0;
    for (unsigned g = 0; g < guests; ++g) {
        const unsigned n = (devices - g + guests - 1) / guests;
        std::printf("%-8s %10u %18.1f %16.1f %9.1fx %6llu / %-6llu\n", ("g" + std::to_string(g)).c_str(), n,
                    cold[g] * 1e3, recovery[g] * 1e3, recovery[g] / cold[g],
                    static_cast<unsigned long long>(cold_calls[g]), static_cast<unsigned long long>(recovery_calls[g]));
        cold_sum += cold[g];
        rec_sum += recovery[g];
        cold_calls_sum += cold_calls[g];
        rec_calls_sum += recovery_calls[g];
    }
    std::printf("%-8s %10u %18.1f %16.1f %9.1fx %6llu / %-6llu\n", "all", devices, cold_sum * 1e3, rec_sum * 1e3,
                rec_sum / cold_sum, static_cast<unsigned long long>(cold_calls_sum),
                static_cast<unsigned long long>(rec_calls_sum));
    std::printf("kernel objects %llu and files %llu %s across the restarts\n", static_cast<unsigned long long>(objects),
                static_cast<unsigned long long>(files), unchanged ? "unchanged" : "CHANGED");
    return unchanged ? 0 : 1;
}
