#include "persist/fd_store.hpp"

#include <systemd/sd-daemon.h>

#include <spdlog/spdlog.h>

#include <cstdlib>

#include "persist/fd_names.hpp"

namespace tio::persist {

std::multimap<std::string, UniqueFd> FdStore::receive() {
    std::multimap<std::string, UniqueFd> out;
    char** names = nullptr;
    const int n = sd_listen_fds_with_names(1, &names);
    for (int i = 0; i < n; ++i) {
        const std::string name = names != nullptr && names[i] != nullptr ? names[i] : std::string(kUnnamed);
        out.emplace(name, UniqueFd(SD_LISTEN_FDS_START + i));
    }
    if (names != nullptr) {
        for (int i = 0; i < n; ++i) std::free(names[i]);
        std::free(names);
    }
    return out;
}

FdStore::FdStore(std::set<std::string> stored)
    : stored_(std::move(stored)), available_(std::getenv("NOTIFY_SOCKET") != nullptr) {}

bool FdStore::store(const std::string& name, int fd) {
    if (!available()) return false;
    if (stored_.contains(name)) remove(name);
    const std::string msg = "FDSTORE=1\nFDNAME=" + name;
    const int r = sd_pid_notify_with_fds(0, 0, msg.c_str(), &fd, 1);
    if (r <= 0) {
        spdlog::error("fd store: cannot keep {}: {}", name, r < 0 ? std::strerror(-r) : "no manager");
        return false;
    }
    stored_.insert(name);
    return true;
}

void FdStore::remove(const std::string& name) {
    if (!stored_.erase(name) || !available()) return;
    const std::string msg = "FDSTOREREMOVE=1\nFDNAME=" + name;
    (void)sd_notify(0, msg.c_str());
}

void FdStore::sync(const std::vector<NamedFd>& wanted, const std::set<std::string>& keep) {
    std::set<std::string> names;
    for (const auto& w : wanted) {
        names.insert(w.name);
        if (!stored_.contains(w.name)) store(w.name, w.fd);
    }
    const std::set<std::string> before = stored_;
    for (const auto& n : before)
        if (!names.contains(n) && !keep.contains(n)) remove(n);
}

void FdStore::removeAll() {
    const std::set<std::string> before = stored_;
    for (const auto& n : before) remove(n);
}

}  // namespace tio::persist
