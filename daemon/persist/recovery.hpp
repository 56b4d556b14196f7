#pragma once
// Restart recovery (architecture.md section 7): what the service manager hands a
// starting daemon, and re-adopting the guest a previous instance kept.
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/unique_fd.hpp"
#include "core/guest.hpp"
#include "persist/state_persister.hpp"

namespace tio::persist {

// The guest socket (kListenName, or the one unnamed listening socket of
// systemd-socket-activate) and, after a restart, the fds the previous instance kept.
struct HandedOver {
    UniqueFd listen;
    std::map<std::string, UniqueFd> kept;
};
[[nodiscard]] HandedOver receiveHandedOver();
[[nodiscard]] std::set<std::string> namesOf(const std::map<std::string, UniqueFd>& fds);

struct Recovered {
    bool restored = false;
    std::vector<std::string> notes;  // one line per thing dropped, finished, undone or forced
};

// Restores `guest` from the newest kept snapshot and the journal after it, and
// continues their numbering in `persister`. What cannot be re-adopted is torn down;
// every kept fd the guest did not take is closed, so the kernel releases it.
[[nodiscard]] Recovered recover(std::map<std::string, UniqueFd> kept, StatePersister& persister, core::Guest& guest);

}  // namespace tio::persist
