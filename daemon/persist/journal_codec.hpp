#pragma once
// The memory journal's entries (proto/tio/v1/memory_journal.proto) in the core's
// terms, both directions side by side.
#include <cstdint>
#include <vector>

#include "core/memory_intent.hpp"
#include "tio/v1/memory_journal.pb.h"

namespace tio::persist {

// Into `out`, cleared first: the journal rewrites one record in place, so encoding
// reuses what the last intent allocated.
void encode(const core::MemoryIntent& intent, v1::MemoryIntent& out);
[[nodiscard]] core::MemoryIntent decode(const v1::MemoryIntent& intent);

// The intents journaled after `snapshot_seq`, in order, each with the outcome the
// journal recorded for it (an outcome may come after the snapshot even when its
// intent did not matter: every outcome counts).
[[nodiscard]] std::vector<core::JournaledIntent> intentsAfter(const std::vector<v1::JournalEntry>& journal,
                                                              std::uint64_t snapshot_seq);

}  // namespace tio::persist
