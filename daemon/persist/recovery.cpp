#include "persist/recovery.hpp"

#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include <spdlog/spdlog.h>

#include "persist/fd_names.hpp"
#include "persist/fd_store.hpp"
#include "persist/journal_codec.hpp"
#include "persist/snapshot_codec.hpp"

namespace tio::persist {

std::set<std::string> namesOf(const std::map<std::string, UniqueFd>& fds) {
    std::set<std::string> names;
    for (const auto& [name, fd] : fds) names.insert(name);
    return names;
}

HandedOver receiveHandedOver() {
    HandedOver h;
    auto received = FdStore::receive();
    for (auto it = received.begin(); it != received.end(); ++it) {
        if ((it->first == kListenName || it->first == kUnnamed) &&
            sd_is_socket_unix(it->second.get(), SOCK_STREAM, 1, nullptr, 0) > 0) {
            h.listen = std::move(it->second);
            received.erase(it);
            break;
        }
    }
    for (auto& [name, fd] : received) h.kept.emplace(name, std::move(fd));
    return h;
}

Recovered recover(std::map<std::string, UniqueFd> kept, StatePersister& persister, core::Guest& guest) {
    Recovered out;
    const auto newest = StatePersister::newestSnapshot(namesOf(kept));
    if (!newest) return out;  // nothing kept: a cold start (closing `kept` releases any stray fd)
    persister.adoptSnapshotGeneration(newest->second);
    auto snap = StatePersister::readSnapshot(kept.at(newest->first).get());
    kept.erase(newest->first);
    std::vector<v1::JournalEntry> journal;
    if (auto j = kept.extract(std::string(kJournalName))) {
        auto contents = MemoryJournal::read(j.mapped().get());
        journal = std::move(contents.entries);
        persister.adoptJournal(std::move(j.mapped()), journal.empty() ? 0 : journal.back().seq(), contents.end);
    }
    if (!snap) return out;
    auto report = guest.restore(decode(*snap, kept), intentsAfter(journal, snap->journal_seq()));
    if (!report) {
        spdlog::error("restart: cannot re-adopt the kept state ({}); tearing it down", report.error().message);
        (void)guest.teardown();
        return out;
    }
    out.restored = true;
    out.notes = std::move(report->notes);
    return out;
}

}  // namespace tio::persist
