// tio-managerd: one process per guest (architecture.md section 2). Wiring only: the
// model is core/, the doors dbus/ and service/, restart survival persist/.
#include <systemd/sd-daemon.h>

#include <cstring>

#include "bus/listen_socket.hpp"
#include "bus/p2p_server.hpp"
#include "common/bus_names.hpp"
#include "common/directories.hpp"
#include "kernel/sim/sim_syscalls.hpp"
#include "kernel/timed_syscalls.hpp"
#include "persist/recovery.hpp"
#include "service/admin_door.hpp"
#include "service/service_loop.hpp"
#include "service/startup.hpp"

using namespace tio;
using service::fatal;

int main(int argc, char** argv) {
    const auto opts = service::parseOptions(argc, argv);
    if (!opts) return 2;
    service::setUpLogging();
    if (!validGuestName(opts->guest))
        return fatal(2, "invalid guest name '{}' (^[a-z][a-z0-9_]{{0,31}}$)", opts->guest);
    auto policy = service::loadPolicy(*opts);
    if (!policy) return 1;
    const auto target = service::chooseTarget(*opts, *policy);
    if (!target) return 2;
    std::unique_ptr<service::PrivateSim> private_sim;
    auto sys = service::openKernel(*target, *opts, private_sim);
    if (!sys) return 1;
    // Every kernel call the guest makes is counted and timed, so a restart can say how
    // much of its re-adoption was the kernel's word and how much the daemon's own work.
    kernel::TimedSyscalls timed_sys(*sys);
    // Where device claims go (the unit's RuntimeDirectory= makes it under systemd);
    // one that cannot be made fails the first claim, which says why.
    (void)makeDirectories(opts->claim_dir, 0755);

    auto handed = persist::receiveHandedOver();
    persist::FdStore fd_store(persist::namesOf(handed.kept));
    core::Guest guest({.name = opts->guest, .platform = target->platform, .claim_dir = opts->claim_dir}, timed_sys,
                      std::move(*policy));
    const std::string backend(toString(target->backend));
    persist::StatePersister persister(fd_store, guest, backend);
    guest.setMemoryObserver(&persister);
    const auto recovery_start = kernel::TimedSyscalls::Clock::now();
    const auto recovered = persist::recover(std::move(handed.kept), persister, guest);
    const auto recovery_time = kernel::TimedSyscalls::Clock::now() - recovery_start;
    const auto recovery_calls = timed_sys.calls();
    const auto recovery_kernel_time = timed_sys.inside();
    auto audit_log = opts->state_dir.empty() ? Result<audit::AuditLog>(audit::AuditLog())
                                             : audit::AuditLog::open(opts->state_dir, opts->guest);
    if (!audit_log) return fatal(1, "audit log: {}", audit_log.error().message);
    dbus::GuestService service(guest, backend, std::move(*audit_log));
    if (recovered.restored) service.audit().record("restarted", {}, nullptr, {}, "re-adopted the kept state");
    for (const auto& n : recovered.notes) service.audit().record("restart-recovery", {}, nullptr, {}, n);
    guest.subscribe([&] { persister.persist(); });  // the model saves itself
    persister.persist();

    auto loop = service::ServiceLoop::create(service, opts->policy);
    if (!loop) return fatal(1, "cannot set up the event loop");
    if (const auto* sim = dynamic_cast<const kernel::SimSyscalls*>(sys.get()); sim != nullptr) {
        if (loop->watchKernel(sim->brokerFd()) < 0) return fatal(1, "cannot watch the simulated kernel");
    }
    // Anyone may connect to --listen's socket; who may drive the guest is decided from
    // SO_PEERCRED against the policy, at accept and again per call (the units set a
    // tighter SocketMode=).
    if (!handed.listen && !opts->listen.empty()) {
        if (auto fd = bus::listenUnix(opts->listen, SOCK_STREAM, 0666)) handed.listen = std::move(*fd);
    }
    if (!handed.listen) return fatal(1, "no guest socket: pass --listen PATH or start me by socket activation");
    const std::string name = guestBusName(opts->guest);
    // Only those who may drive the guest get a connection at all: a stranger is turned
    // away at accept, before any D-Bus work, and never counts as a VMM client.
    bus::P2pServer vmm_door(
        loop->event(), std::move(handed.listen), name,
        [&](sd_bus* b, int peer) { return service.attach(b, core::Door::Vmm, peer); },
        [&](sd_bus* b) { service.detached(b); }, [&](int fd) { return service.admitsVmmPeer(fd); }, opts->peer_limits);
    if (vmm_door.start() < 0) return 1;
    service.setOutputWatcher([&](sd_bus* b) { vmm_door.outputQueued(b); });
    std::unique_ptr<service::AdminDoor> admin_door;
    if (opts->system_bus) {
        auto door = service::AdminDoor::open(service, loop->event(), name);
        if (!door)
            return fatal(1, "system bus: cannot serve {}: {} (--no-system-bus to run without it)", name,
                         std::strerror(-door.error()));
        admin_door = std::move(*door);
    }
    spdlog::info("event=ready guest={} platform={} backend={}", opts->guest, toString(*target), backend);
    if (recovered.restored) {
        const auto ms = [](auto d) { return std::chrono::duration<double, std::milli>(d).count(); };
        spdlog::info("event=recovered guest={} recovery_ms={:.2f} kernel_calls={} kernel_ms={:.2f}", opts->guest,
                     ms(recovery_time), recovery_calls, ms(recovery_kernel_time));
        sd_notifyf(0, "READY=1\nSTATUS=serving guest %s (re-adopted in %.2f ms, %.2f ms of it in %llu kernel calls)",
                   opts->guest.c_str(), ms(recovery_time), ms(recovery_kernel_time),
                   static_cast<unsigned long long>(recovery_calls));
    } else {
        sd_notifyf(0, "READY=1\nSTATUS=serving guest %s", opts->guest.c_str());
    }
    return loop->run();
}
