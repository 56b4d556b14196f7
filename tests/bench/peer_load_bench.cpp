// Many peers on one guest socket (issue 12): a good client's property-read latency
// alone, then beside IDLE authenticated connections that never call and one peer
// that pipelines calls and never reads a reply; the daemon's fds and RSS before,
// under that load, and after everyone left. Figures and the p99 ratio are printed;
// no pass/fail on speed (ctest runs it small so it cannot rot).
//   peer_load_bench [--idle N] [--calls N]
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "support/daemon_rig.hpp"
#include "support/raw_dbus.hpp"

using namespace tio::test;

namespace {

struct Latency {
    double p50_us = 0;
    double p99_us = 0;
};

Latency readState(RawDbusClient& c, int calls) {
    std::vector<double> us;
    us.reserve(static_cast<std::size_t>(calls));
    const RawCall get{.interface = "org.freedesktop.DBus.Properties", .member = "Get", .signature = "ss", .body = [] {
                          std::string b = marshalString("org.tio.Guest1");
                          while (b.size() % 4 != 0) b.push_back('\0');
                          return b + marshalString("State");
                      }()};
    for (int i = 0; i < calls; ++i) {
        RawCall call = get;
        call.serial = static_cast<std::uint32_t>(i + 2);
        const auto t0 = std::chrono::steady_clock::now();
        if (c.send(marshal(call)) != 0 || !c.replyTo(call.serial)) {
            std::fprintf(stderr, "the good client's call %d failed\n", i);
            std::exit(1);
        }
        us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(us.begin(), us.end());
    return {us[us.size() / 2], us[std::min(us.size() - 1, us.size() * 99 / 100)]};
}

std::size_t residentKib(pid_t pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(status, line);) {
        if (line.starts_with("VmRSS:")) return std::stoul(line.substr(6));
    }
    return 0;
}

std::size_t fdCount(const DaemonProcess& d) { return d.openFds().size(); }

// Until the count stays the same for 200 ms (the daemon has seen every goodbye).
std::size_t settledFdCount(const DaemonProcess& d) {
    std::size_t last = fdCount(d);
    for (int i = 0; i < 50; ++i) {
        ::usleep(200'000);
        const std::size_t now = fdCount(d);
        if (now == last) return now;
        last = now;
    }
    return last;
}

}  // namespace

int main(int argc, char** argv) {
    int idle = 500;
    int calls = 3000;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string k = argv[i];
        if (k == "--idle") idle = std::stoi(argv[i + 1]);
        if (k == "--calls") calls = std::stoi(argv[i + 1]);
    }
    SimProcess sim{"tdx"};
    // Limits that admit the load: what is measured is the cost of peers the daemon
    // accepted (the defaults would refuse all but 64).
    const std::string limit = std::to_string(idle + 16);
    DaemonProcess daemon(sim, "vm1", "", {"--max-connections", limit, "--max-connections-per-uid", limit});
    RawDbusClient good(daemon.socket());
    if (!good.handshake()) {
        std::fprintf(stderr, "cannot connect\n");
        return 1;
    }
    (void)readState(good, 100);  // warm-up
    const std::size_t fds_before = settledFdCount(daemon);
    const std::size_t rss_before = residentKib(daemon.pid());
    const Latency alone = readState(good, calls);

    // The load, twice: the second round shows whether what the first cost is reused
    // (bounded) or kept (growing).
    struct Round {
        Latency loaded;
        std::size_t hog_calls = 0, fds_loaded = 0, rss_loaded = 0, fds_after = 0, rss_after = 0;
    };
    auto round = [&]() -> Round {
        Round out;
        std::vector<std::unique_ptr<RawDbusClient>> peers;
        for (int i = 0; i < idle; ++i) {
            peers.push_back(std::make_unique<RawDbusClient>(daemon.socket()));
            if (!peers.back()->handshake()) {
                std::fprintf(stderr, "idle peer %d was refused\n", i);
                std::exit(1);
            }
        }
        auto hog = std::make_unique<RawDbusClient>(daemon.socket());
        if (!hog->handshake() || ::fcntl(hog->fd(), F_SETFL, O_NONBLOCK) != 0) std::exit(1);
        const std::string pipelined = marshal(getAllGuest(1));
        for (int stalled = 0; stalled < 20;) {
            const ssize_t n = ::send(hog->fd(), pipelined.data(), pipelined.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n == static_cast<ssize_t>(pipelined.size())) {
                ++out.hog_calls;
                stalled = 0;
            } else if (n > 0) {
                break;  // full in the middle of a call
            } else {
                ++stalled;
                ::usleep(5'000);
            }
        }
        out.fds_loaded = fdCount(daemon);
        out.loaded = readState(good, calls);
        out.rss_loaded = residentKib(daemon.pid());
        peers.clear();
        hog.reset();
        out.fds_after = settledFdCount(daemon);
        out.rss_after = residentKib(daemon.pid());
        return out;
    };
    const Round first = round();
    const Round second = round();
    const Latency& loaded = second.loaded;

    std::printf("peer load: %d idle peers and one that sent %zu calls without reading a reply (2nd round)\n", idle,
                second.hog_calls);
    std::printf("  good client's Get(State), %d calls  alone: p50 %8.1f us  p99 %8.1f us\n", calls, alone.p50_us,
                alone.p99_us);
    std::printf("                                   loaded: p50 %8.1f us  p99 %8.1f us\n", loaded.p50_us,
                loaded.p99_us);
    std::printf("  p99 ratio loaded/alone           : %.2fx (goal <= 2x)\n", loaded.p99_us / alone.p99_us);
    std::printf("  daemon fds   before %zu; loaded %zu, %zu; after %zu, %zu\n", fds_before, first.fds_loaded,
                second.fds_loaded, first.fds_after, second.fds_after);
    std::printf("  daemon RSS   before %zu KiB; loaded %zu, %zu KiB; after %zu, %zu KiB (rounds 1, 2)\n", rss_before,
                first.rss_loaded, second.rss_loaded, first.rss_after, second.rss_after);
    // A leak is a bug, not a figure.
    return first.fds_after == fds_before && second.fds_after == fds_before ? 0 : 1;
}
