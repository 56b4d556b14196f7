#pragma once
// The product as users run it, for one test: a tio-simkernel process, a private bus
// configured like the system bus (with policy/org.tio.Guest1.conf), and the real
// tio-managerd binary serving guest `name` on its own socket. Clients are the
// generated sdbus-c++ proxies, dbus-python and busctl.
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "support/sim_process.hpp"
#include "support/temp_dir.hpp"

namespace tio::test {

class PrivateSystemBus {
public:
    PrivateSystemBus();
    ~PrivateSystemBus();
    [[nodiscard]] const std::string& address() const { return address_; }

private:
    // Removed after the destructor has stopped dbus-daemon; traversable, as clients
    // run as nobody must reach the socket.
    TempDir dir_{"tio-bus", 0755, "/tmp/"};
    std::string address_;
    pid_t pid_ = -1;
};

class DaemonProcess {
public:
    // Starts tio-managerd for `guest` on `sim`; `extra` are further arguments. The
    // platform is the simulator's unless `extra` holds kPlatformFromPolicy.
    static constexpr const char* kPlatformFromPolicy = "<platform from the policy>";
    DaemonProcess(SimProcess& sim, const std::string& guest, const std::string& system_bus_address,
                  std::vector<std::string> extra = {});
    ~DaemonProcess();
    [[nodiscard]] const std::string& socket() const { return socket_; }
    [[nodiscard]] std::string address() const { return "unix:path=" + socket_; }
    [[nodiscard]] pid_t pid() const { return pid_; }
    // What the daemon process's open fds point at (/proc/PID/fd link targets, sorted).
    [[nodiscard]] std::vector<std::string> openFds() const;
    // Sends SIGTERM and returns the exit status (waitpid encoding).
    int stop();

private:
    std::string socket_;
    pid_t pid_ = -1;
};

// Runs a shell command; returns {exit status, stdout+stderr}.
struct CommandResult {
    int status = -1;
    std::string output;
};
[[nodiscard]] CommandResult runCommand(const std::string& command);

}  // namespace tio::test
