#include "persist/state_persister.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <google/protobuf/io/zero_copy_stream_impl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>

#include "persist/fd_names.hpp"
#include "persist/journal_codec.hpp"
#include "persist/snapshot_codec.hpp"
#include "wire/delimited.hpp"

namespace tio::persist {
namespace {

bool writeAll(int fd, const std::string& bytes) {
    std::size_t off = 0;
    while (off < bytes.size()) {
        const ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        off += static_cast<std::size_t>(n);
    }
    return true;
}

}  // namespace

void StatePersister::adoptJournal(UniqueFd fd, std::uint64_t last_seq) {
    journal_ = std::move(fd);
    seq_ = last_seq;
    struct stat st {};
    if (journal_ && ::fstat(journal_.get(), &st) == 0) journal_bytes_ = static_cast<std::uint64_t>(st.st_size);
    // Appends go to the end whatever the adopted fd's offset was.
    if (journal_) (void)::lseek(journal_.get(), 0, SEEK_END);
}

void StatePersister::append(const v1::JournalEntry& e) {
    if (!FdStore::available()) return;
    if (!journal_) {
        journal_.reset(::memfd_create("tio-journal", MFD_CLOEXEC));
        if (!journal_ || !store_.store(std::string(kJournalName), journal_.get())) {
            spdlog::error("memory journal: cannot create it; a restart cannot finish interrupted conversions");
            return;
        }
    }
    const auto bytes = wire::delimited(e);
    if (!bytes) {
        spdlog::error("memory journal: an entry too large to append");
        return;
    }
    if (!writeAll(journal_.get(), *bytes)) spdlog::error("memory journal: append failed");
    journal_bytes_ += bytes->size();
}

std::uint64_t StatePersister::intent(const core::MemoryIntent& intent) {
    v1::JournalEntry e;
    e.set_seq(++seq_);
    *e.mutable_intent() = encode(intent);
    append(e);
    return seq_;
}

void StatePersister::outcome(std::uint64_t seq, bool done) {
    v1::JournalEntry e;
    e.set_seq(++seq_);
    if (done) e.set_done(seq);
    else e.set_aborted(seq);
    append(e);
}

bool StatePersister::writeSnapshot() {
    v1::GuestSnapshot s = encode(guest_, backend_);
    s.set_journal_seq(seq_);
    std::string bytes;
    if (!s.SerializeToString(&bytes)) return false;
    UniqueFd fd(::memfd_create("tio-snapshot", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!fd || !writeAll(fd.get(), bytes) ||
        ::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
        spdlog::error("snapshot: cannot write it; a restart would use the previous one");
        return false;
    }
    const std::string next = snapshotName(snapshot_generation_ + 1);
    if (!store_.store(next, fd.get())) return false;
    ++snapshot_generation_;
    // Every other snapshot goes only once the new one is kept.
    const std::set<std::string> stored = store_.stored();
    for (const auto& n : stored)
        if (snapshotGeneration(n) && n != next) store_.remove(n);
    return true;
}

std::optional<std::pair<std::string, std::uint64_t>> StatePersister::newestSnapshot(
    const std::set<std::string>& names) {
    std::optional<std::pair<std::string, std::uint64_t>> best;
    for (const auto& n : names) {
        const auto g = snapshotGeneration(n);
        if (g && (!best || *g > best->second)) best = {n, *g};
    }
    return best;
}

bool StatePersister::isStateName(const std::string& name) {
    return name == kJournalName || snapshotGeneration(name).has_value();
}

void StatePersister::persist() {
    if (!FdStore::available()) return;
    const std::uint64_t structure = guest_.generation();
    if (guest_.vm() == nullptr) {
        // Nothing to survive: let the manager drop everything it holds for us.
        if (!store_.stored().empty()) store_.removeAll();
        journal_.reset();
        journal_bytes_ = 0;
        last_structure_ = structure;
        return;
    }
    // Fds first: the snapshot may only name fds the store already has.
    std::set<std::string> keep = {std::string(kJournalName)};
    for (const auto& n : store_.stored())
        if (isStateName(n)) keep.insert(n);
    store_.sync(ownedFds(guest_), keep);
    const bool have_snapshot = std::any_of(store_.stored().begin(), store_.stored().end(),
                                           [](const std::string& n) { return snapshotGeneration(n).has_value(); });
    if (structure == last_structure_ && journal_bytes_ < kJournalCompactBytes && have_snapshot) return;
    // Not kept: the journal stays whole and the next call tries again.
    if (!writeSnapshot()) return;
    last_structure_ = structure;
    if (journal_ && journal_bytes_ > 0) {
        // Everything up to seq_ is in the snapshot just stored, so the journal starts
        // over and a restart reads each change once, in whichever of the two holds it.
        // Replay skips entries by seq, so a crash between the two steps is harmless.
        (void)::ftruncate(journal_.get(), 0);
        (void)::lseek(journal_.get(), 0, SEEK_SET);
        journal_bytes_ = 0;
    }
}

Result<v1::GuestSnapshot> StatePersister::readSnapshot(int fd) {
    v1::GuestSnapshot s;
    google::protobuf::io::FileInputStream in(fd);
    (void)::lseek(fd, 0, SEEK_SET);
    if (!s.ParseFromZeroCopyStream(&in)) return fail(Code::InvalidArgument, "the stored snapshot does not parse");
    return s;
}

std::vector<v1::JournalEntry> StatePersister::readJournal(int fd) {
    std::vector<v1::JournalEntry> out;
    (void)::lseek(fd, 0, SEEK_SET);
    google::protobuf::io::FileInputStream in(fd);
    for (;;) {
        v1::JournalEntry e;
        if (!wire::readDelimited(in, e)) break;
        out.push_back(std::move(e));
    }
    return out;
}

}  // namespace tio::persist
