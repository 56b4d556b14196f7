#pragma once
// What systemd does for tio-manager@GUEST.service, without systemd: owns the guest
// socket (as the .socket unit does), keeps the fd store (sd_notify FDSTORE=1 /
// FDSTOREREMOVE=1 with FDNAME, over a NOTIFY_SOCKET it reads on its own thread),
// and starts the daemon with LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID: the socket as
// "vmm" and every stored fd under its name. Tests kill the daemon with SIGKILL and
// start it again, exactly like Restart=on-failure.
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.hpp"
#include "support/sim_process.hpp"

namespace tio::test {

class ServiceManager {
public:
    ServiceManager(SimProcess& sim, std::string guest, std::vector<std::string> extra_args = {});
    ServiceManager(const ServiceManager&) = delete;
    ServiceManager& operator=(const ServiceManager&) = delete;
    ~ServiceManager();

    // Starts the daemon and waits for READY=1; returns the seconds that took.
    double start();
    // start() in two halves: the fork and exec, then the wait for READY=1 (the
    // seconds since launch()). Between them the socket already takes calls, queued
    // until the daemon serves, as under systemd.
    void launch();
    double waitReady();
    void kill9();  // SIGKILL, reaped
    int stop();    // SIGTERM; the exit status (waitpid encoding)

    [[nodiscard]] std::string address() const { return "unix:path=" + socket_; }
    [[nodiscard]] const std::string& socketPath() const { return socket_; }
    [[nodiscard]] std::set<std::string> storedNames();
    [[nodiscard]] std::size_t storedFds();
    // A copy of the stored fd named `name` (the first if names repeat); empty if none.
    [[nodiscard]] UniqueFd storedCopy(const std::string& name);
    // The last STATUS= the daemon sent.
    [[nodiscard]] std::string status();
    [[nodiscard]] pid_t pid() const { return pid_; }
    [[nodiscard]] const std::string& stateDir() const { return state_dir_; }

private:
    void readNotifications();

    SimProcess& sim_;
    std::string guest_;
    std::vector<std::string> extra_;
    std::string socket_;
    std::string notify_path_;
    std::string state_dir_;
    UniqueFd listen_;
    UniqueFd notify_;
    pid_t pid_ = -1;
    std::chrono::steady_clock::time_point launched_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::multimap<std::string, UniqueFd> store_;
    std::string status_;
    bool ready_ = false;
    bool busy_ = false;  // the reader holds a message it has not applied yet
    std::atomic<bool> stopping_{false};
    std::thread reader_;
};

}  // namespace tio::test
