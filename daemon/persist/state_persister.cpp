#include "persist/state_persister.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <google/protobuf/io/zero_copy_stream_impl.h>
#include <spdlog/spdlog.h>

#include <cstdlib>

#include "persist/fd_names.hpp"
#include "persist/journal_codec.hpp"
#include "persist/snapshot_codec.hpp"

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

void StatePersister::adoptJournal(UniqueFd fd, std::uint64_t last_seq, std::uint64_t end) {
    seq_ = last_seq;
    journal_ = MemoryJournal::adopt(std::move(fd), end);
    if (!journal_) spdlog::error("memory journal: cannot continue the kept one; starting a new one");
}

void StatePersister::append(const v1::JournalEntry& e) {
    if (!store_.available()) return;
    if (!journal_) {
        journal_ = MemoryJournal::create();
        if (!journal_ || !store_.store(std::string(kJournalName), journal_->fd())) {
            spdlog::error("memory journal: cannot create it; a restart cannot finish interrupted conversions");
            journal_.reset();
            return;
        }
    }
    if (!journal_->append(e)) spdlog::error("memory journal: append failed");
}

std::uint64_t StatePersister::intent(const core::MemoryIntent& intent) {
    // On every conversion's path: one record object, rewritten in place, so after the
    // first conversion journaling allocates nothing (a cleared repeated field keeps
    // its elements, a string its buffer).
    intent_record_.set_seq(++seq_);
    encode(intent, *intent_record_.mutable_intent());
    append(intent_record_);
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
    snapshot_bytes_ = bytes.size();
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
    if (!store_.available()) return;
    const std::uint64_t structure = guest_.generation();
    // Only page states changed (a conversion, a hole punch): the journal holds them,
    // and the fds and the snapshot are as the last call left them, since every fd the
    // guest owns belongs to an object whose making or destroying changes the number.
    // This is the path of every conversion, so it allocates nothing.
    if (structure == last_structure_ && journalBytes() < foldAt()) return;
    if (guest_.vm() == nullptr) {
        // Nothing to survive: let the manager drop everything it holds for us.
        if (!store_.stored().empty()) store_.removeAll();
        journal_.reset();
        last_structure_ = structure;
        return;
    }
    // Fds first: the snapshot may only name fds the store already has.
    std::set<std::string> keep = {std::string(kJournalName)};
    for (const auto& n : store_.stored())
        if (isStateName(n)) keep.insert(n);
    store_.sync(ownedFds(guest_), keep);
    // Not kept: the journal stays whole and the next call tries again.
    if (!writeSnapshot()) return;
    last_structure_ = structure;
    if (journalBytes() > 0) {
        // Everything up to seq_ is in the snapshot just stored, so the journal starts
        // over and a restart reads each change once, in whichever of the two holds it.
        // Replay skips entries by seq, so a crash between the two steps is harmless.
        journal_->clear();
    }
}

Result<v1::GuestSnapshot> StatePersister::readSnapshot(int fd) {
    v1::GuestSnapshot s;
    google::protobuf::io::FileInputStream in(fd);
    (void)::lseek(fd, 0, SEEK_SET);
    if (!s.ParseFromZeroCopyStream(&in)) return fail(Code::InvalidArgument, "the stored snapshot does not parse");
    return s;
}

}  // namespace tio::persist
