#pragma once
// What a memory operation means to do, in the core's terms: told to the observer
// before the operation's first kernel call and replayed after a crash, so a restart
// can finish or undo the one operation a crash interrupted. The persister encodes it
// (proto/tio/v1/memory_journal.proto); the core never sees that encoding.
#include <cstdint>
#include <vector>

#include "core/lifecycle.hpp"
#include "core/object_table.hpp"

namespace tio::core {

struct MemoryConversion {
    std::uint64_t gpa = 0;
    std::uint64_t size = 0;
    MemoryState to = MemoryState::Private;
    friend bool operator==(const MemoryConversion&, const MemoryConversion&) = default;
};

struct MemoryIntent {
    enum class Kind : std::uint8_t { Convert, Punch, Add, Remove };
    Kind kind = Kind::Convert;
    std::vector<MemoryConversion> ranges;  // Convert (each with its target), Punch (`to` unused)
    ObjectId region_id = 0;                // Add, Remove
    std::uint64_t gpa = 0;                 // Add
    std::uint64_t size = 0;                // Add
    friend bool operator==(const MemoryIntent&, const MemoryIntent&) = default;
};

// Told of every memory operation before its first kernel call (intent) and after
// its last (outcome). Returns the intent's sequence number.
class MemoryObserver {
public:
    virtual ~MemoryObserver() = default;
    virtual std::uint64_t intent(const MemoryIntent& intent) = 0;
    virtual void outcome(std::uint64_t seq, bool done) = 0;
};

// An intent from the journal since the snapshot, with what became of it.
struct JournaledIntent {
    enum class Outcome : std::uint8_t { Done, Aborted, Unknown };  // Unknown: the crash came first
    std::uint64_t seq = 0;
    MemoryIntent intent;
    Outcome outcome = Outcome::Unknown;
};

}  // namespace tio::core
