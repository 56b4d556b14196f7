// Restart benchmark (issue 5): --guests guests share --devices TDISP devices and
// --memory-gib GiB of guest memory (defaults: 4, 100, 1024), each guest with its
// devices bound and running and its memory fragmented by --conversions random
// conversions. Every daemon runs under the service-manager harness (the fd store
// protocol, tests/support/service_manager.hpp). Measured in the same run:
//   cold start: spawn to READY=1 with nothing kept (the baseline);
//   bring-up:   the cold start plus the calls that give the guest its VM, memory and
//               running devices (not the conversions, which are the guest's): what
//               starting the same guest from nothing costs;
//   recovery:   after SIGKILL, spawn to READY=1 with every fd and the snapshot kept,
//               the guest re-adopted and checked against the kernel;
//   in kernel:  the calls the recovering daemon made and the time inside them, as it
//               reports them in STATUS=; a simulated call is a socket round trip, so
//               recovery is also given without that time;
//   round trip: a bare SEQPACKET ping-pong between two processes, the floor under
//               any simulated kernel call on this host.
// Prints each per guest, the ratios, and the kernel calls each start made (cold /
// recovery: the simulator's count). No pass/fail on speed; exits 1 if a restart
// changed the kernel's objects or files, or a recovering daemon did not report.
// Everything shares one CPU unless --cpu spread (one_cpu.hpp).
//   restart_bench [--platform P] [--guests G] [--devices D] [--memory-gib M] [--conversions C]
//                 [--cpu one|spread]
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sdbus-c++/sdbus-c++.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "one_cpu.hpp"
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

double secondsSince(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// What a recovering daemon says in STATUS= (daemon/main.cpp): the re-adoption's wall
// time and, of it, the kernel calls and the time inside them.
struct Readoption {
    double ms = 0;
    double kernel_ms = 0;
    unsigned long long kernel_calls = 0;
};
std::optional<Readoption> parseStatus(const std::string& status) {
    const auto at = status.find("re-adopted in ");
    Readoption r;
    if (at == std::string::npos || std::sscanf(status.c_str() + at, "re-adopted in %lf ms, %lf ms of it in %llu", &r.ms,
                                               &r.kernel_ms, &r.kernel_calls) != 3) {
        return std::nullopt;
    }
    return r;
}

// The median round trip of a 48-byte request and its reply over a SEQPACKET socket
// pair between two processes, each waiting in poll() as the daemon and the simulator do.
double bareRoundTripMicros() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return 0;
    const pid_t echo = ::fork();
    if (echo == 0) {
        ::close(sv[0]);
        char buf[64];
        for (;;) {
            pollfd p{sv[1], POLLIN, 0};
            (void)::poll(&p, 1, -1);
            const ssize_t n = ::read(sv[1], buf, sizeof buf);
            if (n <= 0 || ::write(sv[1], buf, static_cast<std::size_t>(n)) != n) ::_exit(0);
        }
    }
    ::close(sv[1]);
    std::vector<double> us;
    char buf[64] = {};
    for (int i = 0; i < 2000; ++i) {
        const auto t = std::chrono::steady_clock::now();
        pollfd p{sv[0], POLLIN, 0};
        if (::write(sv[0], buf, 48) != 48 || ::poll(&p, 1, 1000) != 1 || ::read(sv[0], buf, sizeof buf) != 48) break;
        us.push_back(secondsSince(t) * 1e6);
    }
    ::close(sv[0]);
    (void)::waitpid(echo, nullptr, 0);
    if (us.empty()) return 0;
    std::nth_element(us.begin(), us.begin() + static_cast<std::ptrdiff_t>(us.size() / 2), us.end());
    return us[us.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    std::string platform = "tdx";
    unsigned guests = 4, devices = 100, conversions = 2000;
    std::uint64_t memory_gib = 1024;
    bool one_cpu = true;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        const std::string v = argv[i + 1];
        if (a == "--platform") platform = v;
        else if (a == "--guests") guests = static_cast<unsigned>(std::stoul(v));
        else if (a == "--devices") devices = static_cast<unsigned>(std::stoul(v));
        else if (a == "--memory-gib") memory_gib = std::stoull(v);
        else if (a == "--conversions") conversions = static_cast<unsigned>(std::stoul(v));
        else if (a == "--cpu" && (v == "one" || v == "spread")) one_cpu = v == "one";
        else {
            std::fprintf(stderr, "unknown option %s\n", a.c_str());
            return 2;
        }
    }
    if (guests == 0 || devices < guests || memory_gib < guests) return 2;
    const std::string cpus = one_cpu ? tio::bench::pinToOneCpu() : "CPUs as the scheduler places them";
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
    std::vector<double> bring_up;           // cold start plus the calls that build the guest
    std::vector<std::uint64_t> cold_calls;  // kernel calls (the simulator's syscalls) from spawn to READY
    std::mt19937_64 rng(7);
    for (unsigned g = 0; g < guests; ++g) {
        managers.push_back(std::make_unique<ServiceManager>(sim, "g" + std::to_string(g),
                                                            std::vector<std::string>{"--policy", policy}));
        const auto calls_before = sim.counter("syscalls");
        cold.push_back(managers.back()->start());
        cold_calls.push_back(sim.counter("syscalls") - calls_before);
        double building = 0;
        auto t = std::chrono::steady_clock::now();
        auto conn = sdbus::createSessionBusConnectionWithAddress(managers.back()->address());
        GuestClient guest(*conn, "g" + std::to_string(g));
        vmms.push_back(std::make_unique<VmmClient>(sim));
        VmmClient& vmm = *vmms.back();
        vmm.attachVm(guest);
        (void)vmm.addMemory(guest, kGpa, per_guest, "private");
        building += secondsSince(t);
        for (unsigned c = 0; c < conversions; ++c) {
            const std::uint64_t size = (rng() % 2 == 0) ? 4096 : 2ULL << 20U;
            const std::uint64_t gpa = kGpa + (rng() % (per_guest / size)) * size;
            guest.ConvertMemory(gpa, size, rng() % 2 == 0 ? "shared" : "private");
        }
        std::string viommu;
        t = std::chrono::steady_clock::now();
        for (unsigned d = g; d < devices; d += guests) {
            const std::string path = vmm.addDevice(*conn, guest, bdfs[d]);
            if (viommu.empty()) viommu = guest.CreateVIommu(path, {});
            DeviceClient dev(*conn, path);
            dev.CreateVDevice(viommu, d + 1);
            dev.Bind();
            (void)dev.GuestRequest("state-change", {0x02});
        }
        building += secondsSince(t);
        bring_up.push_back(cold.back() + building);
        // The guest must outlive this connection: a restart drops VMM connections,
        // and the last one closing would tear it down; here the harness's kill comes first.
        managers.back()->kill9();
    }
    const auto objects = sim.counter("objects");
    const auto files = sim.counter("open_files");
    std::vector<double> recovery;
    std::vector<std::uint64_t> recovery_calls;
    std::vector<Readoption> readoption;
    bool reported = true;
    for (auto& m : managers) {
        const auto calls_before = sim.counter("syscalls");
        recovery.push_back(m->start());
        recovery_calls.push_back(sim.counter("syscalls") - calls_before);
        const auto r = parseStatus(m->status());
        if (!r) std::fprintf(stderr, "no re-adoption in the daemon's STATUS: '%s'\n", m->status().c_str());
        reported = reported && r.has_value();
        readoption.push_back(r.value_or(Readoption{}));
    }
    const bool unchanged = sim.counter("objects") == objects && sim.counter("open_files") == files;
    const double round_trip_us = bareRoundTripMicros();

    std::printf(
        "restart benchmark: %s, %u guests, %u devices bound and running, %llu GiB of memory, "
        "%u conversions per guest; %s\n",
        platform.c_str(), guests, devices, static_cast<unsigned long long>(memory_gib), conversions, cpus.c_str());
    std::printf("%-6s %7s %10s %9s %9s %7s %9s %18s %10s %7s %9s %9s\n", "guest", "devices", "cold (ms)", "bring-up",
                "recovery", "/cold", "daemon's", "in kernel (calls)", "recovery", "/cold", "/bring-up", "kernel");
    std::printf("%-6s %7s %10s %9s %9s %7s %9s %18s %10s %7s %9s %9s\n", "", "", "", "(ms)", "(ms)", "", "part (ms)",
                "(ms)", "less kernel", "", "", "calls");
    struct Sum {
        double cold = 0, bring_up = 0, recovery = 0, part = 0, kernel = 0;
        unsigned long long calls = 0;
        std::uint64_t cold_calls = 0, recovery_calls = 0;
    } all;
    auto row = [](const std::string& name, unsigned n, const Sum& v) {
        const double less = v.recovery - v.kernel;
        std::printf("%-6s %7u %10.1f %9.1f %9.1f %6.2fx %9.2f %9.2f (%6llu) %10.1f %6.2fx %8.2fx %4llu / %-4llu\n",
                    name.c_str(), n, v.cold * 1e3, v.bring_up * 1e3, v.recovery * 1e3, v.recovery / v.cold,
                    v.part * 1e3, v.kernel * 1e3, v.calls, less * 1e3, less / v.cold, v.recovery / v.bring_up,
                    static_cast<unsigned long long>(v.cold_calls), static_cast<unsigned long long>(v.recovery_calls));
    };
    for (unsigned g = 0; g < guests; ++g) {
        const unsigned n = (devices - g + guests - 1) / guests;
        const Sum v{cold[g],
                    bring_up[g],
                    recovery[g],
                    readoption[g].ms / 1e3,
                    readoption[g].kernel_ms / 1e3,
                    readoption[g].kernel_calls,
                    cold_calls[g],
                    recovery_calls[g]};
        row("g" + std::to_string(g), n, v);
        all.cold += v.cold;
        all.bring_up += v.bring_up;
        all.recovery += v.recovery;
        all.part += v.part;
        all.kernel += v.kernel;
        all.calls += v.calls;
        all.cold_calls += v.cold_calls;
        all.recovery_calls += v.recovery_calls;
    }
    row("all", devices, all);
    std::printf("time per kernel call in recovery: %.1f us; a bare SEQPACKET round trip on this host: %.1f us\n",
                all.calls != 0 ? all.kernel * 1e6 / static_cast<double>(all.calls) : 0.0, round_trip_us);
    std::printf("kernel objects %llu and files %llu %s across the restarts\n", static_cast<unsigned long long>(objects),
                static_cast<unsigned long long>(files), unchanged ? "unchanged" : "CHANGED");
    return unchanged && reported ? 0 : 1;
}
