#include "support/service_manager.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "bus/listen_socket.hpp"
#include "common/unix_socket.hpp"
#include "support/process.hpp"

extern char** environ;

namespace tio::test {

ServiceManager::ServiceManager(SimProcess& sim, std::string guest, std::vector<std::string> extra_args)
    : sim_(sim), guest_(std::move(guest)), extra_(std::move(extra_args)) {
    socket_ = sim_.dir() + "/" + guest_ + ".sock";
    notify_path_ = sim_.dir() + "/" + guest_ + ".notify";
    state_dir_ = sim_.dir() + "/state-" + guest_;
    std::filesystem::create_directories(state_dir_);
    std::filesystem::create_directories(sim_.dir() + "/claims");
    auto l = bus::listenUnix(socket_, SOCK_STREAM, 0666);
    if (!l) throw std::runtime_error("cannot listen on " + socket_);
    listen_ = std::move(*l);
    notify_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, notify_path_.c_str(), sizeof addr.sun_path - 1);
    if (::bind(notify_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
        throw std::runtime_error("cannot bind " + notify_path_);
    }
    reader_ = std::thread([this] { readNotifications(); });
}

ServiceManager::~ServiceManager() {
    (void)stop();
    stopping_ = true;
    reader_.join();
}

void ServiceManager::readNotifications() {
    while (!stopping_) {
        pollfd p{notify_.get(), POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        {
            std::lock_guard l(mu_);
            busy_ = true;
        }
        // The poll said a datagram is there and this thread is its only reader.
        // sd_notify datagrams are small; 64 KiB holds any the daemon sends.
        auto message = unixsock::receive(notify_.get(), 64U * 1024U);
        if (!message) {
            std::lock_guard l(mu_);
            busy_ = false;
            continue;
        }
        std::vector<UniqueFd> fds = std::move(message->fds);
        std::map<std::string, std::string> fields;
        std::istringstream lines(std::string(message->bytes.begin(), message->bytes.end()));
        for (std::string line; std::getline(lines, line);) {
            const auto eq = line.find('=');
            if (eq != std::string::npos) fields[line.substr(0, eq)] = line.substr(eq + 1);
        }
        std::lock_guard l(mu_);
        busy_ = false;
        if (fields["FDSTORE"] == "1") {
            for (auto& fd : fds) {
                // Like systemd: a file already in the store is not stored again, under
                // any name (names may repeat).
                struct stat st {};
                ::fstat(fd.get(), &st);
                const bool duplicate = std::any_of(store_.begin(), store_.end(), [&](const auto& kv) {
                    struct stat o {};
                    return ::fstat(kv.second.get(), &o) == 0 && o.st_dev == st.st_dev && o.st_ino == st.st_ino;
                });
                if (!duplicate) store_.emplace(fields["FDNAME"], std::move(fd));
            }
        }
        if (fields["FDSTOREREMOVE"] == "1") store_.erase(fields["FDNAME"]);
        if (fields.contains("STATUS")) status_ = fields["STATUS"];
        if (fields["READY"] == "1") {
            ready_ = true;
            cv_.notify_all();
        }
    }
}

double ServiceManager::start() {
    launch();
    return waitReady();
}

void ServiceManager::launch() {
    // Everything the child gets, prepared before fork (the child only dup2s and execs).
    std::vector<int> fds = {listen_.get()};
    std::string names = "vmm";
    {
        std::lock_guard l(mu_);
        for (const auto& [name, fd] : store_) {
            fds.push_back(fd.get());
            names += ":" + name;
        }
        ready_ = false;
    }
    std::vector<UniqueFd> high;
    // Copies above 3 + n, so the child's dup2 onto 3.. never lands on one it still
    // needs. Not far above: growing this process's fd table past its first 64 slots
    // waits for an RCU grace period while the notify thread shares it (8-11 ms here,
    // once per process), which instance_bench would count as the first start's.
    const int above = static_cast<int>(3 + fds.size());
    for (int fd : fds) high.emplace_back(::fcntl(fd, F_DUPFD_CLOEXEC, above));
    std::vector<std::string> args = {
        TIO_MANAGERD_PATH, "--guest",           guest_,        "--platform",           "sim-" + sim_.platform(),
        "--sim-socket",    sim_.kernelSocket(), "--claim-dir", sim_.dir() + "/claims", "--state-dir",
        state_dir_,        "--no-system-bus"};
    for (const auto& e : extra_) args.push_back(e);
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string_view v(*e);
        if (!v.starts_with("LISTEN_") && !v.starts_with("NOTIFY_SOCKET=")) env.emplace_back(v);
    }
    env.push_back("NOTIFY_SOCKET=" + notify_path_);
    env.push_back("LISTEN_FDS=" + std::to_string(fds.size()));
    env.push_back("LISTEN_FDNAMES=" + names);
    env.push_back("LISTEN_PID=0000000000");  // filled in by the child
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    char* pid_field = env.back().data() + std::strlen("LISTEN_PID=");

    launched_ = std::chrono::steady_clock::now();
    pid_ = ::fork();
    if (pid_ == 0) {
        for (std::size_t i = 0; i < high.size(); ++i) ::dup2(high[i].get(), static_cast<int>(3 + i));
        // LISTEN_PID is this process's pid, written without allocating.
        pid_t me = ::getpid();
        char digits[16];
        int n = 0;
        do {
            digits[n++] = static_cast<char>('0' + me % 10);
            me /= 10;
        } while (me > 0);
        for (int i = 0; i < n; ++i) pid_field[i] = digits[n - 1 - i];
        pid_field[n] = '\0';
        ::execve(argv[0], argv.data(), envp.data());
        ::_exit(127);
    }
}

double ServiceManager::waitReady() {
    std::unique_lock l(mu_);
    const bool ready = cv_.wait_for(l, std::chrono::seconds(20), [&] { return ready_; });
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - launched_).count();
    if (!ready) ADD_FAILURE() << "tio-managerd sent no READY=1";
    return seconds;
}

void ServiceManager::kill9() {
    if (pid_ <= 0) return;
    (void)stopProcess(pid_, SIGKILL);
    // Like systemd, take every notification the dead process sent before acting on
    // its death: the next start must see the fd store as the process left it.
    for (;;) {
        int pending = 0;
        ::ioctl(notify_.get(), FIONREAD, &pending);
        pollfd p{notify_.get(), POLLIN, 0};
        const bool queued = ::poll(&p, 1, 0) > 0;
        {
            std::lock_guard l(mu_);
            if (!queued && !busy_) break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    // A killed process's last system call has completed or never happened by the time
    // it is reaped. The simulator serves calls as messages: a request the daemon sent
    // just before dying may still wait in a file's socket. One round trip on the
    // control door drains them (the simulator serves files before its control door).
    (void)sim_.counters();
}

int ServiceManager::stop() { return stopProcess(pid_, SIGTERM); }

std::set<std::string> ServiceManager::storedNames() {
    std::lock_guard l(mu_);
    std::set<std::string> out;
    for (const auto& [name, fd] : store_) out.insert(name);
    return out;
}

std::size_t ServiceManager::storedFds() {
    std::lock_guard l(mu_);
    return store_.size();
}

UniqueFd ServiceManager::storedCopy(const std::string& name) {
    std::lock_guard l(mu_);
    const auto it = store_.find(name);
    if (it == store_.end()) return UniqueFd();
    auto copy = it->second.duplicate();
    return copy ? std::move(*copy) : UniqueFd();
}

std::string ServiceManager::status() {
    std::lock_guard l(mu_);
    return status_;
}

}  // namespace tio::test
