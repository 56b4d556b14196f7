#pragma once
// A private simulator for a sim-* target without --sim-socket: tio-simkernel started
// from next to this binary (the build tree) or from ../bin (installed: the daemon
// is in sbin, the simulator in bin), in a fresh directory, and stopped (SIGTERM,
// then reaped) and its directory removed when this goes.
#include <sys/types.h>

#include <memory>
#include <string>

#include "common/platform.hpp"

namespace tio::service {

class PrivateSim {
public:
    // Starts one for `platform` and waits (at most 10 s) for its sockets.
    [[nodiscard]] static std::unique_ptr<PrivateSim> start(Platform platform);
    PrivateSim(const PrivateSim&) = delete;
    PrivateSim& operator=(const PrivateSim&) = delete;
    ~PrivateSim();

    // The simulated kernel's socket, for kernel::SimSyscalls::connect.
    [[nodiscard]] const std::string& kernelSocket() const { return kernel_socket_; }

private:
    PrivateSim() = default;
    pid_t pid_ = -1;
    std::string dir_;
    std::string kernel_socket_;
};

}  // namespace tio::service
