#include "service/service_loop.hpp"

#include <signal.h>
#include <sys/epoll.h>
#include <systemd/sd-daemon.h>

#include <spdlog/spdlog.h>

namespace tio::service {

std::unique_ptr<ServiceLoop> ServiceLoop::create(dbus::GuestService& service, std::string policy_path) {
    sd_event* raw = nullptr;
    if (sd_event_default(&raw) < 0) return nullptr;
    std::unique_ptr<ServiceLoop> loop(new ServiceLoop(service, std::move(policy_path), dbus::EventPtr(raw)));
    sigset_t mask;
    sigemptyset(&mask);
    for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&mask, s);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    signal(SIGPIPE, SIG_IGN);
    sd_event_source* src = nullptr;
    int r = sd_event_add_signal(raw, &src, SIGTERM, onTerminate, loop.get());
    loop->sigterm_.reset(src);
    if (r >= 0) r = sd_event_add_signal(raw, &src, SIGINT, onTerminate, loop.get());
    if (r >= 0) loop->sigint_.reset(src);
    if (r >= 0) r = sd_event_add_signal(raw, &src, SIGHUP, onReload, loop.get());
    if (r >= 0) loop->sighup_.reset(src);
    if (r >= 0) r = sd_event_set_watchdog(raw, 1);  // WATCHDOG=1 every WATCHDOG_USEC/2 when systemd asks
    std::uint64_t now = 0;
    if (r >= 0) r = sd_event_now(raw, CLOCK_MONOTONIC, &now);
    if (r >= 0) r = sd_event_add_time(raw, &src, CLOCK_MONOTONIC, now + kTdiWatchUsec, 0, onTdiWatch, loop.get());
    if (r >= 0) loop->tdi_watch_.reset(src);
    if (r >= 0) r = sd_event_source_set_enabled(src, SD_EVENT_ON);
    if (r < 0) return nullptr;
    return loop;
}

int ServiceLoop::run() { return sd_event_loop(event_.get()) < 0 ? 1 : 0; }

void ServiceLoop::shutdown() {
    service_.beginShutdown();
    sd_notify(0, "STOPPING=1\nSTATUS=tearing down");
    for (const auto& e : service_.guest().teardown()) spdlog::warn("teardown step failed: {}, ignoring", e.message);
    sd_event_exit(event_.get(), 0);
}

void ServiceLoop::reload() {
    if (policy_path_.empty()) return;
    auto p = core::Policy::load(policy_path_);
    if (!p) {
        service_.audit().record("policy-refused", {}, nullptr, policy_path_,
                                p.error().message + "; the old policy stays in force");
        return;
    }
    service_.audit().record("policy-reloaded", {}, nullptr, policy_path_);
    service_.setPolicy(std::move(*p));
}

int ServiceLoop::onTerminate(sd_event_source*, const signalfd_siginfo*, void* self) {
    static_cast<ServiceLoop*>(self)->shutdown();
    return 0;
}

int ServiceLoop::onReload(sd_event_source*, const signalfd_siginfo*, void* self) {
    static_cast<ServiceLoop*>(self)->reload();
    return 0;
}

int ServiceLoop::watchKernel(int socket) {
    sd_event_source* src = nullptr;
    // Only the hang-up matters: the socket's replies are read by the call that waits for them.
    const int r = sd_event_add_io(event_.get(), &src, socket, EPOLLRDHUP, onKernelGone, this);
    if (r >= 0) kernel_watch_.reset(src);
    return r;
}

int ServiceLoop::onKernelGone(sd_event_source* source, int, std::uint32_t revents, void* self) {
    if ((revents & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) == 0) return 0;
    sd_event_source_set_enabled(source, SD_EVENT_OFF);  // once
    auto& service = static_cast<ServiceLoop*>(self)->service_;
    const std::string detail = "the simulated kernel closed its socket: every kernel call fails from now on";
    service.audit().record("kernel-gone", {}, nullptr, {}, detail);
    service.emitFault(dbus::kRootPath, "kernel-gone", detail);
    return 0;
}

int ServiceLoop::onTdiWatch(sd_event_source* source, std::uint64_t now, void* self) {
    static_cast<ServiceLoop*>(self)->service_.watchTdis();
    sd_event_source_set_time(source, now + kTdiWatchUsec);
    return 0;
}

}  // namespace tio::service
