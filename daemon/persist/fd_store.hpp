#pragma once
// systemd's fd store (sd_pid_notify_with_fds FDSTORE=1 / FDSTOREREMOVE=1, each fd
// under a name) and the fds a service manager hands back at start (LISTEN_FDS with
// LISTEN_FDNAMES): what lets the guest's kernel state outlive the daemon
// (architecture.md section 7). Without NOTIFY_SOCKET nothing is stored.
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/unique_fd.hpp"
#include "persist/fd_names.hpp"

namespace tio::persist {

class FdStore {
public:
    // Every fd passed at start, by name ("unknown" when unnamed; names repeat only
    // for listening sockets, which the caller takes first).
    [[nodiscard]] static std::multimap<std::string, UniqueFd> receive();

    // `stored`: the names the manager holds already (those received at start).
    explicit FdStore(std::set<std::string> stored);

    // Whether a service manager listens ($NOTIFY_SOCKET when this store was made:
    // read once, as the journal asks on every conversion).
    [[nodiscard]] bool available() const noexcept { return available_; }
    // Keeps a copy of `fd` under `name` (the name is replaced if stored).
    bool store(const std::string& name, int fd);
    void remove(const std::string& name);
    // Stores what `wanted` has and the store lacks; removes stored names not in it,
    // except `keep`.
    void sync(const std::vector<NamedFd>& wanted, const std::set<std::string>& keep);
    void removeAll();
    [[nodiscard]] const std::set<std::string>& stored() const { return stored_; }

private:
    std::set<std::string> stored_;
    bool available_;
};

}  // namespace tio::persist
