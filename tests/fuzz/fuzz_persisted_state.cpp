// The snapshot and the memory journal a restarted daemon reads back from its fd
// store: the first input byte picks which, the rest is the file. Both are parsed as
// the daemon parses them (from an fd) and decoded into the core's types.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <map>

#include "common/unique_fd.hpp"
#include "persist/journal_codec.hpp"
#include "persist/memory_journal.hpp"
#include "persist/snapshot_codec.hpp"
#include "persist/state_persister.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    tio::UniqueFd file(::memfd_create("fuzz-state", MFD_CLOEXEC));
    if (!file || ::write(file.get(), data + 1, size - 1) != static_cast<ssize_t>(size - 1)) return 0;
    if (data[0] % 2 == 0) {
        auto snapshot = tio::persist::StatePersister::readSnapshot(file.get());
        if (!snapshot) return 0;
        std::map<std::string, tio::UniqueFd> fds;
        (void)tio::persist::decode(*snapshot, fds);
    } else {
        const auto journal = tio::persist::MemoryJournal::read(file.get()).entries;
        for (const auto& e : journal) {
            if (e.has_intent()) (void)tio::persist::decode(e.intent());
        }
        (void)tio::persist::intentsAfter(journal, 0);
    }
    return 0;
}
