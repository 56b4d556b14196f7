#include "persist/journal_codec.hpp"

#include <map>
#include <string>

namespace tio::persist {
namespace {

using Kind = core::MemoryIntent::Kind;

v1::MemoryIntent::Kind toProto(Kind k) {
    switch (k) {
        case Kind::Convert: return v1::MemoryIntent::CONVERT;
        case Kind::Punch: return v1::MemoryIntent::PUNCH;
        case Kind::Add: return v1::MemoryIntent::ADD;
        case Kind::Remove: return v1::MemoryIntent::REMOVE;
    }
    return v1::MemoryIntent::KIND_UNSPECIFIED;
}

}  // namespace

void encode(const core::MemoryIntent& intent, v1::MemoryIntent& out) {
    out.Clear();  // its ranges stay allocated for the add_ranges() below to reuse
    out.set_kind(toProto(intent.kind));
    for (const auto& c : intent.ranges) {
        auto* r = out.add_ranges();
        r->set_gpa(c.gpa);
        r->set_size(c.size);
        if (intent.kind == Kind::Convert) {
            const std::string_view to = core::toString(c.to);
            r->set_to(to.data(), to.size());
        }
    }
    out.set_region_id(intent.region_id);
    out.set_gpa(intent.gpa);
    out.set_size(intent.size);
}

core::MemoryIntent decode(const v1::MemoryIntent& intent) {
    core::MemoryIntent out;
    switch (intent.kind()) {
        case v1::MemoryIntent::PUNCH: out.kind = Kind::Punch; break;
        case v1::MemoryIntent::ADD: out.kind = Kind::Add; break;
        case v1::MemoryIntent::REMOVE: out.kind = Kind::Remove; break;
        default: out.kind = Kind::Convert; break;
    }
    for (const auto& r : intent.ranges()) {
        out.ranges.push_back({r.gpa(), r.size(), core::parseMemoryState(r.to()).value_or(core::MemoryState::Private)});
    }
    out.region_id = intent.region_id();
    out.gpa = intent.gpa();
    out.size = intent.size();
    return out;
}

std::vector<core::JournaledIntent> intentsAfter(const std::vector<v1::JournalEntry>& journal,
                                                std::uint64_t snapshot_seq) {
    using Outcome = core::JournaledIntent::Outcome;
    std::map<std::uint64_t, Outcome> outcomes;  // intent seq -> what became of it
    for (const auto& e : journal) {
        if (e.has_done()) outcomes[e.done()] = Outcome::Done;
        if (e.has_aborted()) outcomes[e.aborted()] = Outcome::Aborted;
    }
    std::vector<core::JournaledIntent> out;
    for (const auto& e : journal) {
        if (!e.has_intent() || e.seq() <= snapshot_seq) continue;
        // An intent of an unknown kind is not ours to replay.
        if (e.intent().kind() == v1::MemoryIntent::KIND_UNSPECIFIED) continue;
        auto it = outcomes.find(e.seq());
        out.push_back({e.seq(), decode(e.intent()), it == outcomes.end() ? Outcome::Unknown : it->second});
    }
    return out;
}

}  // namespace tio::persist
