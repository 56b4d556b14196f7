// Many guests on one host (issue 13, "Start and scale"): starts N tio-managerd
// instances (one per guest) against one simulator and reports, beside the same
// figures for a single instance measured first in the same run:
//  - start to first reply: from spawning the daemon to the answer to its first
//    call (its listening socket appears within 2 ms polling; the call then waits
//    until the daemon serves);
//  - idle RSS per instance (VmRSS, shared library pages included) and in total,
//    beside the same-run RSS of idle_floor, a C++ sd-bus server that does nothing
//    (the part of the figure any daemon built like this one pays), with and
//    without the standard streams libprotobuf sets up;
//  - the p50/p99 of a property read, round-robin across all instances;
//  - start to first reply under socket activation (a service manager's socket, the
//    call queued before the daemon runs), over a series of starts one at a time.
// Figures only; no pass/fail on speed (ctest runs it small so it cannot rot).
//   instance_bench [--guests N] [--reads N] [--activations N]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "support/daemon_rig.hpp"
#include "support/process.hpp"
#include "support/raw_dbus.hpp"
#include "support/service_manager.hpp"

using namespace tio::test;

namespace {

using Clock = std::chrono::steady_clock;

// A field of /proc/PID/FILE in KiB ("VmRSS:" of status; "Pss:" of smaps_rollup:
// the process's share of the pages it maps, shared library pages divided among
// their users, which is what N instances together cost).
std::size_t kibOf(pid_t pid, const char* file, const std::string& field) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/" + file);
    for (std::string line; std::getline(in, line);) {
        if (line.starts_with(field)) return std::stoul(line.substr(field.size()));
    }
    return 0;
}
std::size_t residentKib(pid_t pid) { return kibOf(pid, "status", "VmRSS:"); }
std::size_t proportionalKib(pid_t pid) { return kibOf(pid, "smaps_rollup", "Pss:"); }

RawCall getState(std::uint32_t serial) {
    std::string body = marshalString("org.tio.Guest1");
    while (body.size() % 4 != 0) body.push_back('\0');
    return RawCall{.serial = serial,
                   .interface = "org.freedesktop.DBus.Properties",
                   .member = "Get",
                   .signature = "ss",
                   .body = body + marshalString("State")};
}

struct Instance {
    std::unique_ptr<DaemonProcess> daemon;
    std::unique_ptr<RawDbusClient> client;
    double start_ms = 0;
    std::uint32_t serial = 1;
};

// The first call on a fresh connection, answered; exits naming the guest if not.
void firstCall(RawDbusClient& client, std::uint32_t serial, const std::string& guest) {
    if (!client.handshake() || client.send(marshal(getState(serial))) != 0 || !client.replyTo(serial)) {
        std::fprintf(stderr, "%s did not answer\n", guest.c_str());
        std::exit(1);
    }
}

Instance start(SimProcess& sim, const std::string& guest) {
    Instance in;
    const auto t0 = Clock::now();
    in.daemon = std::make_unique<DaemonProcess>(sim, guest, "");
    in.client = std::make_unique<RawDbusClient>(in.daemon->socket());
    firstCall(*in.client, in.serial, guest);
    in.start_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    return in;
}

struct Reads {
    double p50_us = 0;
    double p99_us = 0;
};

Reads readAll(std::vector<Instance>& all, int reads) {
    std::vector<double> us;
    for (int i = 0; i < reads; ++i) {
        Instance& in = all[static_cast<std::size_t>(i) % all.size()];
        const std::uint32_t serial = ++in.serial;
        const auto t0 = Clock::now();
        if (in.client->send(marshal(getState(serial))) != 0 || !in.client->replyTo(serial)) std::exit(1);
        us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    std::sort(us.begin(), us.end());
    return {us[us.size() / 2], us[std::min(us.size() - 1, us.size() * 99 / 100)]};
}

// Start as socket activation has it: the socket exists before the daemon does, and
// the first call is queued on it at once; from the fork to that call's answer. (The
// instances above, started with --listen, are timed to a socket file polled every
// 2 ms, which adds up to 2 ms.)
double activatedStartMs(SimProcess& sim, const std::string& guest) {
    ServiceManager manager(sim, guest);
    const auto t0 = Clock::now();
    manager.launch();
    RawDbusClient client(manager.socketPath());
    firstCall(client, 1, guest);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    (void)manager.waitReady();
    return ms;
}

// The RSS of an idle_floor build once it is serving (see its header comment).
std::size_t floorKib(const char* program) {
    const std::string ready = "/tmp/tio-idle-floor-" + std::to_string(::getpid());
    pid_t pid = spawnProcess({program, ready});
    waitForPath(ready, "idle_floor");
    const std::size_t kib = residentKib(pid);
    (void)stopProcess(pid, SIGKILL);
    ::unlink(ready.c_str());
    return kib;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    int guests = 200;
    int reads = 4000;
    int activations = 20;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string k = argv[i];
        if (k == "--guests") guests = std::stoi(argv[i + 1]);
        if (k == "--reads") reads = std::stoi(argv[i + 1]);
        if (k == "--activations") activations = std::stoi(argv[i + 1]);
    }
    SimProcess sim{"tdx"};
    // The baseline: one instance alone.
    std::vector<Instance> one;
    one.push_back(start(sim, "solo"));
    const Reads solo = readAll(one, reads);
    const std::size_t solo_rss = residentKib(one.front().daemon->pid());
    const std::size_t solo_pss = proportionalKib(one.front().daemon->pid());
    const double solo_start = one.front().start_ms;
    const std::size_t floor_rss = floorKib(TIO_IDLE_FLOOR_PATH);
    const std::size_t floor_iostream_rss = floorKib(TIO_IDLE_FLOOR_IOSTREAM_PATH);
    one.clear();

    std::vector<double> activated;
    activated.reserve(static_cast<std::size_t>(std::max(activations, 0)));
    for (int i = 0; i < activations; ++i) activated.push_back(activatedStartMs(sim, "a" + std::to_string(i)));

    std::vector<Instance> all;
    const auto t0 = Clock::now();
    for (int i = 0; i < guests; ++i) all.push_back(start(sim, "g" + std::to_string(i)));
    const double all_start_s = std::chrono::duration<double>(Clock::now() - t0).count();
    const Reads many = readAll(all, reads);
    std::size_t total_rss = 0;
    std::size_t total_pss = 0;
    std::vector<double> starts;
    for (const Instance& in : all) {
        total_rss += residentKib(in.daemon->pid());
        total_pss += proportionalKib(in.daemon->pid());
        starts.push_back(in.start_ms);
    }

    std::printf("guest instances: 1, then %d against one simulator\n", guests);
    std::printf("  start to first reply     : alone %.1f ms; %d instances: median %.1f ms, max %.1f ms, all %.2f s\n",
                solo_start, guests, median(starts), *std::max_element(starts.begin(), starts.end()), all_start_s);
    if (!activated.empty()) {
        std::printf("  ... socket-activated     : median %.1f ms, max %.1f ms over %d starts (goal <= 5 ms)\n",
                    median(activated), *std::max_element(activated.begin(), activated.end()), activations);
    }
    std::printf("  idle RSS per instance    : alone %zu KiB; mean of %d %zu KiB (goal <= 6 MiB each)\n", solo_rss,
                guests, total_rss / static_cast<std::size_t>(guests));
    std::printf("  idle RSS of idle_floor   : %zu KiB (a C++ sd-bus server doing nothing); the daemon adds %zu KiB\n",
                floor_rss, solo_rss - std::min(solo_rss, floor_rss));
    std::printf(
        "  ... with <iostream>      : %zu KiB (the streams libprotobuf's constructors set up); the daemon adds "
        "%zu KiB\n",
        floor_iostream_rss, solo_rss - std::min(solo_rss, floor_iostream_rss));
    std::printf("  idle PSS per instance    : alone %zu KiB; mean of %d %zu KiB; total %.1f MiB\n", solo_pss, guests,
                total_pss / static_cast<std::size_t>(guests), total_pss / 1024.0);
    std::printf("  property read, %d reads : alone p50 %.1f us p99 %.1f us; across %d p50 %.1f us p99 %.1f us\n", reads,
                solo.p50_us, solo.p99_us, guests, many.p50_us, many.p99_us);
    std::printf("  p99 ratio many/alone     : %.2fx (goal <= 2x)\n", many.p99_us / solo.p99_us);
    return 0;
}
