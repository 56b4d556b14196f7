#include "service/startup.hpp"

#include <unistd.h>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/systemd_sink.h>

#include <cerrno>
#include <cstring>

#include "kernel/linux_syscalls.hpp"
#include "kernel/sim/sim_syscalls.hpp"

namespace tio::service {

void setUpLogging() {
    if (::access("/run/systemd/journal/socket", F_OK) == 0) {
        spdlog::set_default_logger(spdlog::systemd_logger_st("tio-managerd", "tio-managerd"));
        spdlog::set_pattern("%v");
    } else {
        spdlog::set_default_logger(spdlog::stderr_logger_st("tio-managerd"));
        spdlog::set_pattern("tio-managerd[%P]: %l %v");
    }
}

std::optional<core::Policy> loadPolicy(const Options& o) {
    if (o.policy.empty()) return core::Policy::development(o.guest, ::getuid());
    auto p = core::Policy::load(o.policy);
    if (!p) {
        spdlog::error("policy {}: {}", o.policy, p.error().message);
        return std::nullopt;
    }
    if (p->guest(o.guest) == nullptr) {
        spdlog::error("guest {} is not in the policy", o.guest);
        return std::nullopt;
    }
    return std::move(*p);
}

std::optional<Target> chooseTarget(const Options& o, const core::Policy& policy) {
    // The command line wins; the packaged unit leaves the platform to the policy.
    const std::string& name = !o.target.empty() ? o.target : policy.guest(o.guest)->platform;
    const auto target = parseTarget(name);
    if (!target) {
        spdlog::error(
            "no platform for guest {} ('{}'): pass --platform or set guests.{}.platform in the policy to one of {}",
            o.guest, name, o.guest, targetNames());
    }
    return target;
}

std::unique_ptr<kernel::Syscalls> openKernel(const Target& t, const Options& o, std::unique_ptr<PrivateSim>& sim) {
    if (t.backend == Backend::Linux) return std::make_unique<kernel::LinuxSyscalls>();
    std::string socket = o.sim_socket;
    if (socket.empty()) {
        sim = PrivateSim::start(t.platform);
        if (!sim) {
            spdlog::error("cannot start a private tio-simkernel");
            return nullptr;
        }
        socket = sim->kernelSocket();
    }
    // The simulated backend uses the simulator's KVM too: a real KVM-VFIO device
    // cannot take a simulated VFIO file (KVM_DEV_VFIO_FILE_ADD checks the file's
    // f_op), so mixing them would break the FILE_ADD-before-BIND order.
    auto s = kernel::SimSyscalls::connect(socket);
    if (!s) {
        spdlog::error("cannot reach tio-simkernel at {}: {}", socket, std::strerror(s.error()));
        return nullptr;
    }
    return std::move(*s);
}

}  // namespace tio::service
