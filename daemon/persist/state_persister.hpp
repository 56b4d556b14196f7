#pragma once
// Keeps what a restarted daemon needs in the fd store (architecture.md section 7):
// the guest's fds by name, a tio.v1.GuestSnapshot in a sealed memfd ("snapshot.N";
// the next is stored before the previous is removed, so one is always there),
// and the memory journal ("journal", proto/tio/v1/memory_journal.proto), an append-only
// memfd of intents and outcomes (persist/memory_journal.hpp). A snapshot is written when anything but page states
// changed, or when the journal has grown; page-state changes cost two small appends.
// Invariants: every fd the snapshot names is stored before the snapshot is; the
// journal holds only what came after the newest snapshot (it starts over at each).
#include <algorithm>
#include <string>
#include <vector>

#include "common/unique_fd.hpp"
#include "core/guest.hpp"
#include "persist/fd_store.hpp"
#include "persist/memory_journal.hpp"
#include "tio/v1/guest_snapshot.pb.h"
#include "tio/v1/memory_journal.pb.h"

namespace tio::persist {

class StatePersister final : public core::MemoryObserver {
public:
    StatePersister(FdStore& store, core::Guest& guest, std::string backend)
        : store_(store), guest_(guest), backend_(std::move(backend)) {}

    // Continues a previous instance's journal, whose records (MemoryJournal::read)
    // end at `end` (restore replays them first).
    void adoptJournal(UniqueFd fd, std::uint64_t last_seq, std::uint64_t end);
    // Continues a previous instance's snapshot numbering.
    void adoptSnapshotGeneration(std::uint64_t generation) { snapshot_generation_ = generation; }
    // The kept snapshot to restore from: the newest "snapshot.N" of `names`.
    [[nodiscard]] static std::optional<std::pair<std::string, std::uint64_t>> newestSnapshot(
        const std::set<std::string>& names);
    [[nodiscard]] static bool isStateName(const std::string& name);
    // After every change the daemon made.
    void persist();

    std::uint64_t intent(const core::MemoryIntent& intent) override;
    void outcome(std::uint64_t seq, bool done) override;

    [[nodiscard]] static Result<v1::GuestSnapshot> readSnapshot(int fd);

    // The journal is folded into a snapshot once it holds this much, or as much as the
    // last snapshot if that is more: a snapshot costs its size to write, so folding
    // when the journal has grown as large keeps the cost of folds per conversion
    // bounded by a few bytes of copying however fragmented memory is (a million
    // fragments make a snapshot of ~20 MB), and a restart reads at most twice the
    // snapshot.
    static constexpr std::uint64_t kJournalCompactBytes = 1U << 20U;

private:
    void append(const v1::JournalEntry& e);
    [[nodiscard]] std::uint64_t journalBytes() const { return journal_ ? journal_->bytes() : 0; }
    [[nodiscard]] std::uint64_t foldAt() const { return std::max(kJournalCompactBytes, snapshot_bytes_); }
    // True when the new snapshot is in the store.
    [[nodiscard]] bool writeSnapshot();

    FdStore& store_;
    core::Guest& guest_;
    std::string backend_;
    std::optional<MemoryJournal> journal_;
    std::uint64_t seq_ = 0;
    std::uint64_t last_structure_ = ~std::uint64_t{0};  // generation() at the last snapshot
    std::uint64_t snapshot_generation_ = 0;             // "snapshot.N": the newest N is the one
    std::uint64_t snapshot_bytes_ = 0;                  // the size of the last snapshot written
    v1::JournalEntry intent_record_;                    // reused by every intent()
};

}  // namespace tio::persist
