// tio-managerd: one process per guest (architecture.md section 2). Wiring only.
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/systemd_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "core/guest.hpp"
#include "core/policy.hpp"
#include "dbus/guest_service.hpp"
#include "dbus/listen_socket.hpp"
#include "dbus/p2p_server.hpp"
#include "kernel/linux_syscalls.hpp"
#include "kernel/sim_syscalls.hpp"
#include "persist/fd_store.hpp"
#include "persist/state_persister.hpp"

extern char** environ;

namespace {

using namespace tio;

struct Args {
    std::string guest;
    std::string platform;  // tdx|snp|cca (real kernel) or sim-tdx|sim-snp|sim-cca
    std::string sim_socket;
    std::string listen;
    std::string policy;
    std::string claim_dir = "/run/tio-manager/devices";
    std::string state_dir;  // audit records; default $STATE_DIRECTORY (systemd's StateDirectory=)
    bool system_bus = true;
};

void usage() {
    std::fprintf(stderr,
                 "usage: tio-managerd --guest NAME [--platform tdx|snp|cca|sim-tdx|sim-snp|sim-cca]\n"
                 "                    [--sim-socket PATH] [--listen PATH] [--policy FILE]\n"
                 "                    [--claim-dir DIR] [--state-dir DIR] [--no-system-bus]\n"
                 "  Without --listen the guest socket comes from socket activation (LISTEN_FDS).\n"
                 "  Without --policy the guest belongs to the invoking user and may claim any device.\n"
                 "  Without --platform the guest's platform in the policy is used.\n");
}

std::optional<Args> parseArgs(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string k = argv[i];
        auto value = [&](std::string& into) {
            if (i + 1 >= argc) return false;
            into = argv[++i];
            return true;
        };
        bool ok = true;
        if (k == "--guest") ok = value(a.guest);
        else if (k == "--platform") ok = value(a.platform);
        else if (k == "--sim-socket") ok = value(a.sim_socket);
        else if (k == "--listen") ok = value(a.listen);
        else if (k == "--policy") ok = value(a.policy);
        else if (k == "--claim-dir") ok = value(a.claim_dir);
        else if (k == "--state-dir") ok = value(a.state_dir);
        else if (k == "--no-system-bus") a.system_bus = false;
        else ok = false;
        if (!ok) return std::nullopt;
    }
    if (a.guest.empty()) return std::nullopt;
    if (a.state_dir.empty()) {
        if (const char* s = std::getenv("STATE_DIRECTORY")) a.state_dir = s;
    }
    return a;
}

// A private simulator for `--platform sim-*` without --sim-socket: started from next
// to this binary, stopped when the daemon exits.
struct PrivateSim {
    pid_t pid = -1;
    std::string dir;
    ~PrivateSim() {
        if (pid > 0) {
            ::kill(pid, SIGTERM);
            ::waitpid(pid, nullptr, 0);
        }
        if (!dir.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(dir, ec);
        }
    }
};

std::optional<std::string> startPrivateSim(PrivateSim& sim, const std::string& platform) {
    char tmpl[] = "/tmp/tio-managerd-sim-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return std::nullopt;
    sim.dir = tmpl;
    // Next to this binary (the build tree), or in ../bin (installed: the daemon is in
    // sbin, the simulator in bin).
    const auto here = std::filesystem::read_symlink("/proc/self/exe").parent_path();
    std::string path = here / "tio-simkernel";
    if (!std::filesystem::exists(path)) path = here.parent_path() / "bin" / "tio-simkernel";
    std::string control = sim.dir + "/sim.ctl";
    std::string kernel = sim.dir + "/sim.kernel";
    std::string plat = platform;
    std::vector<char*> argv = {path.data(), const_cast<char*>("--platform"), plat.data(), const_cast<char*>("--control"),
                               control.data(), const_cast<char*>("--kernel"), kernel.data(), nullptr};
    if (::posix_spawn(&sim.pid, path.c_str(), nullptr, nullptr, argv.data(), environ) != 0) return std::nullopt;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!std::filesystem::exists(control)) {
        if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    spdlog::info("event=private-simulator control={} kernel={}", control, kernel);
    return kernel;
}

// How often bound TDIs are checked for a spontaneous move to error. No kernel
// interface announces it (the TSM uevent covers the TSM, not TDIs), so this is a
// bounded poll: one small TSM request per bound device per second.
constexpr std::uint64_t kTdiWatchUsec = 1000000;

struct Daemon {
    dbus::GuestService* service = nullptr;
    core::Guest* guest = nullptr;
    sd_event* event = nullptr;
    std::string policy_path;
};

int onTdiWatch(sd_event_source* source, std::uint64_t now, void* userdata) {
    auto* d = static_cast<Daemon*>(userdata);
    d->service->watchTdis();
    sd_event_source_set_time(source, now + kTdiWatchUsec);
    return 0;
}

int onTerminate(sd_event_source*, const signalfd_siginfo*, void* userdata) {
    auto* d = static_cast<Daemon*>(userdata);
    // Refuse new calls, unwind the guest leaf-first, then leave the loop.
    d->service->beginShutdown();
    sd_notify(0, "STOPPING=1\nSTATUS=tearing down");
    for (const auto& e : d->guest->teardown()) spdlog::warn("teardown step failed: {}, ignoring", e.message);
    d->service->publish();
    return sd_event_exit(d->event, 0);
}

int onReload(sd_event_source*, const signalfd_siginfo*, void* userdata) {
    auto* d = static_cast<Daemon*>(userdata);
    if (d->policy_path.empty()) return 0;
    auto p = core::Policy::load(d->policy_path);
    if (!p) {
        d->service->record("policy-refused", {}, nullptr, d->policy_path,
                           p.error().message + "; the old policy stays in force");
        return 0;
    }
    d->service->record("policy-reloaded", {}, nullptr, d->policy_path);
    d->service->setPolicy(std::move(*p));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const auto args = parseArgs(argc, argv);
    if (!args) {
        usage();
        return 2;
    }
    // Log lines go to the journal when it is there (structured: PRIORITY, and the
    // key=value message), else to stderr; never to stdout.
    if (std::filesystem::exists("/run/systemd/journal/socket")) {
        spdlog::set_default_logger(spdlog::systemd_logger_st("tio-managerd", "tio-managerd"));
        spdlog::set_pattern("%v");
    } else {
        spdlog::set_default_logger(spdlog::stderr_logger_st("tio-managerd"));
        spdlog::set_pattern("tio-managerd[%P]: %l %v");
    }
    if (!core::validGuestName(args->guest)) {
        spdlog::error("invalid guest name '{}' (^[a-z][a-z0-9_]{{0,31}}$)", args->guest);
        return 2;
    }
    core::Policy policy = core::Policy::development(args->guest, ::getuid());
    if (!args->policy.empty()) {
        auto p = core::Policy::load(args->policy);
        if (!p) {
            spdlog::error("policy {}: {}", args->policy, p.error().message);
            return 1;
        }
        if (p->guest(args->guest) == nullptr) {
            spdlog::error("guest {} is not in the policy", args->guest);
            return 1;
        }
        policy = std::move(*p);
    }
    // The command line wins; the packaged unit leaves the platform to the policy.
    const std::string platform_name = !args->platform.empty() ? args->platform : policy.guest(args->guest)->platform;
    if (platform_name.empty()) {
        spdlog::error("no platform for guest {}: pass --platform or set guests.{}.platform in the policy", args->guest,
                      args->guest);
        return 2;
    }
    const bool simulated = platform_name.starts_with("sim-");
    const auto platform = parsePlatform(simulated ? platform_name.substr(4) : platform_name);
    if (!platform) {
        usage();
        return 2;
    }

    PrivateSim private_sim;
    std::unique_ptr<kernel::Syscalls> sys;
    if (simulated) {
        std::string socket = args->sim_socket;
        if (socket.empty()) {
            auto started = startPrivateSim(private_sim, std::string(toString(*platform)));
            if (!started) {
                spdlog::error("cannot start a private tio-simkernel");
                return 1;
            }
            socket = *started;
        }
        // The simulated backend uses the simulator's KVM too: a real KVM-VFIO device
        // cannot take a simulated VFIO file (KVM_DEV_VFIO_FILE_ADD checks the file's
        // f_op), so mixing them would break the FILE_ADD-before-BIND order.
        auto s = kernel::SimSyscalls::connect(socket, /*use_host_kvm=*/false);
        if (!s) {
            spdlog::error("cannot reach tio-simkernel at {}: {}", socket, std::strerror(s.error()));
            return 1;
        }
        sys = std::move(*s);
    } else {
        sys = std::make_unique<kernel::LinuxSyscalls>();
    }
    std::error_code ec;
    std::filesystem::create_directories(args->claim_dir, ec);

    // What the service manager hands over: the guest socket ("vmm", or the one
    // unnamed listening socket of systemd-socket-activate) and, after a restart, the
    // fds the previous instance kept.
    auto received = persist::FdStore::receive();
    UniqueFd listen_fd;
    for (auto it = received.begin(); it != received.end(); ++it) {
        if ((it->first == "vmm" || it->first == "unknown") && sd_is_socket_unix(it->second.get(), SOCK_STREAM, 1, nullptr, 0) > 0) {
            listen_fd = std::move(it->second);
            received.erase(it);
            break;
        }
    }
    std::map<std::string, UniqueFd> kept;
    for (auto& [name, fd] : received) kept.emplace(name, std::move(fd));
    std::set<std::string> kept_names;
    for (const auto& [name, fd] : kept) kept_names.insert(name);
    persist::FdStore fd_store(kept_names);

    core::Guest guest({.name = args->guest, .platform = *platform, .claim_dir = args->claim_dir}, *sys);
    persist::StatePersister persister(fd_store, guest, simulated ? "sim" : "linux");
    guest.setMemoryObserver(&persister);
    std::vector<std::string> restored_notes;
    bool restored = false;
    const auto newest = persist::StatePersister::newestSnapshot(kept_names);
    if (newest) persister.adoptSnapshotGeneration(newest->second);
    if (auto snap_fd = newest ? kept.extract(newest->first) : decltype(kept.extract("")){}) {
        auto snap = persist::StatePersister::readSnapshot(snap_fd.mapped().get());
        std::vector<v1::JournalEntry> journal;
        if (auto j = kept.extract("journal")) {
            journal = persist::StatePersister::readJournal(j.mapped().get());
            persister.adoptJournal(std::move(j.mapped()), journal.empty() ? 0 : journal.back().seq());
        }
        if (snap) {
            auto report = guest.restore(*snap, journal, kept);
            if (report) {
                restored = true;
                restored_notes = std::move(report->notes);
            } else {
                spdlog::error("restart: cannot re-adopt the kept state ({}); tearing it down", report.error().message);
                (void)guest.teardown();
            }
        }
    }
    kept.clear();  // anything not re-adopted: closing it lets the kernel release it

    audit::AuditLog audit_log;
    if (!args->state_dir.empty()) {
        auto opened = audit::AuditLog::open(args->state_dir, args->guest);
        if (!opened) {
            spdlog::error("audit log: {}", opened.error().message);
            return 1;
        }
        audit_log = std::move(*opened);
    }
    dbus::GuestService service(guest, std::move(policy), simulated ? "sim" : "linux", std::move(audit_log));
    if (restored) {
        service.record("restarted", {}, nullptr, {}, "re-adopted the kept state");
        for (const auto& n : restored_notes) service.record("restart-recovery", {}, nullptr, {}, n);
    }
    service.setOnPublished([&] { persister.persist(); });
    persister.persist();

    sd_event* event = nullptr;
    if (sd_event_default(&event) < 0) return 1;
    sigset_t mask;
    sigemptyset(&mask);
    for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&mask, s);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    signal(SIGPIPE, SIG_IGN);
    Daemon daemon{&service, &guest, event, args->policy};
    sd_event_add_signal(event, nullptr, SIGTERM, onTerminate, &daemon);
    sd_event_add_signal(event, nullptr, SIGINT, onTerminate, &daemon);
    sd_event_add_signal(event, nullptr, SIGHUP, onReload, &daemon);
    sd_event_set_watchdog(event, 1);  // WATCHDOG=1 every WATCHDOG_USEC/2 when systemd asks
    sd_event_source* tdi_watch = nullptr;
    std::uint64_t now = 0;
    sd_event_now(event, CLOCK_MONOTONIC, &now);
    sd_event_add_time(event, &tdi_watch, CLOCK_MONOTONIC, now + kTdiWatchUsec, 0, onTdiWatch, &daemon);
    sd_event_source_set_enabled(tdi_watch, SD_EVENT_ON);

    if (!listen_fd && !args->listen.empty()) {
        // Anyone may connect; who may drive the guest is decided per call from
        // SO_PEERCRED against the policy (the units set a tighter SocketMode=).
        if (auto fd = dbus::listenUnix(args->listen, SOCK_STREAM, 0666)) listen_fd = std::move(*fd);
    }
    if (!listen_fd) {
        spdlog::error("no guest socket: pass --listen PATH or start me by socket activation");
        return 1;
    }
    const std::string sender = "org.tio.Guest1." + args->guest;
    dbus::P2pServer vmm_door(
        event, std::move(listen_fd), sender, [&](sd_bus* bus) { return service.attach(bus, dbus::Door::Vmm); },
        [&](sd_bus* bus) { service.detached(bus); });
    if (vmm_door.start() < 0) return 1;

    sd_bus* system_bus = nullptr;
    if (args->system_bus) {
        int r = sd_bus_open_system(&system_bus);
        if (r >= 0) r = service.attach(system_bus, dbus::Door::Admin);
        if (r >= 0) r = sd_bus_request_name(system_bus, sender.c_str(), 0);
        if (r >= 0) r = sd_bus_attach_event(system_bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0) {
            spdlog::error("system bus: cannot serve {}: {} (--no-system-bus to run without it)", sender,
                          std::strerror(-r));
            return 1;
        }
    }

    spdlog::info("event=ready guest={} platform={} backend={}", args->guest, platform_name, simulated ? "sim" : "linux");
    sd_notifyf(0, "READY=1\nSTATUS=serving guest %s", args->guest.c_str());
    const int r = sd_event_loop(event);
    if (system_bus != nullptr) {
        service.detached(system_bus);
        sd_bus_flush_close_unref(system_bus);
    }
    sd_event_source_unref(tdi_watch);
    sd_event_unref(event);
    return r < 0 ? 1 : 0;
}
