#pragma once
// The daemon's event loop and everything that happens on it besides D-Bus calls:
// SIGTERM/SIGINT (the shutdown order), SIGHUP (policy reload), the watchdog, and
// the TDI watch timer. Single-threaded: the loop owns the guest.
#include <memory>
#include <string>

#include "dbus/guest_service.hpp"
#include "dbus/sd_ptr.hpp"

namespace tio::service {

class ServiceLoop {
public:
    // nullptr when sd-event cannot set up the loop.
    [[nodiscard]] static std::unique_ptr<ServiceLoop> create(dbus::GuestService& service, std::string policy_path);
    ServiceLoop(const ServiceLoop&) = delete;
    ServiceLoop& operator=(const ServiceLoop&) = delete;

    [[nodiscard]] sd_event* event() const { return event_.get(); }
    // Serves until told to stop; the process's exit code.
    [[nodiscard]] int run();

    // How often bound TDIs are checked for a spontaneous move to error. No kernel
    // interface announces it (the TSM uevent covers the TSM, not TDIs), so this is a
    // bounded poll: one small TSM request per bound device per second.
    static constexpr std::uint64_t kTdiWatchUsec = 1000000;

    // Watches the simulated kernel's socket: when the simulator goes away, the VMM
    // hears it (Fault on the guest, kind "kernel-gone") instead of meeting EIO later.
    [[nodiscard]] int watchKernel(int socket);

private:
    ServiceLoop(dbus::GuestService& service, std::string policy_path, dbus::EventPtr event)
        : service_(service), policy_path_(std::move(policy_path)), event_(std::move(event)) {}
    // The shutdown order (style rule 32): refuse new calls, tell the manager, unwind
    // the guest leaf-first (the core publishes and persists the empty guest), leave
    // the loop.
    void shutdown();
    // A valid policy file applies; an invalid one is refused and the old one stays.
    void reload();

    static int onTerminate(sd_event_source*, const signalfd_siginfo*, void* self);
    static int onReload(sd_event_source*, const signalfd_siginfo*, void* self);
    static int onTdiWatch(sd_event_source* source, std::uint64_t now, void* self);
    static int onKernelGone(sd_event_source* source, int fd, std::uint32_t revents, void* self);

    dbus::GuestService& service_;
    std::string policy_path_;
    dbus::EventPtr event_;
    dbus::EventSourcePtr sigterm_, sigint_, sighup_, tdi_watch_, kernel_watch_;
};

}  // namespace tio::service
