#pragma once
// The memory journal's file (architecture.md section 7): a memfd the fd store keeps,
// mapped here, taking length-delimited tio.v1.JournalEntry records by a copy into the
// mapping. A conversion journals an intent and an outcome; as copies they cost no
// syscall. The mapping is the file's own pages, so a record is in the file the moment
// it is copied and outlives a crash of this process exactly as a write(2) would.
// Invariant: the file is zeros after the last record, and a record is never empty
// (every entry has a seq), so the first empty record, or the end of the file, ends
// the journal; a record a crash cut short does not parse, and ends it too.
#include <google/protobuf/message_lite.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "common/shared_mapping.hpp"
#include "common/unique_fd.hpp"
#include "tio/v1/memory_journal.pb.h"

namespace tio::persist {

class MemoryJournal {
public:
    // A new, empty journal; nullopt (errno set) if no memfd could be made and mapped.
    [[nodiscard]] static std::optional<MemoryJournal> create();
    // Continues a kept journal whose records end at `end` (what read() found); what
    // lies after them, a record a crash cut short, is zeroed first.
    [[nodiscard]] static std::optional<MemoryJournal> adopt(UniqueFd fd, std::uint64_t end);

    // Appends `record`; false if the file could not grow to take it.
    [[nodiscard]] bool append(const google::protobuf::MessageLite& record);
    // Drops every record: the file is zeros again.
    void clear();

    [[nodiscard]] int fd() const noexcept { return fd_.get(); }
    // Where the next record goes: the bytes the records take.
    [[nodiscard]] std::uint64_t bytes() const noexcept { return end_; }

    struct Contents {
        std::vector<v1::JournalEntry> entries;
        std::uint64_t end = 0;  // the offset after the last record
    };
    // The records of a journal file, in order, up to its end or the first record that
    // is empty, cut short or does not parse.
    [[nodiscard]] static Contents read(int fd);

    // The size a journal file starts at: twice the least the persister lets it grow
    // to before it folds it into a snapshot (StatePersister::kJournalCompactBytes).
    // Past it the file doubles, so appends stay copies with a rare remap.
    static constexpr std::uint64_t kInitialCapacity = 2U << 20U;

private:
    MemoryJournal(UniqueFd fd, std::uint64_t end) : fd_(std::move(fd)), end_(end) {}
    // The file is at least `size` bytes long and mapped whole.
    [[nodiscard]] bool reserve(std::uint64_t size);

    UniqueFd fd_;
    SharedMapping map_;
    std::uint64_t end_ = 0;
};

}  // namespace tio::persist
