#pragma once
// The guest's whole model as text, for "a failed call changed nothing" checks: the
// snapshot the daemon would store (persist::encode), so what is compared is what
// survives a restart, and the snapshot cannot miss a part of the model unnoticed.
#include <string>

#include "core/guest.hpp"
#include "persist/snapshot_codec.hpp"
#include "wire/message_text.hpp"

namespace tio::test {

[[nodiscard]] inline std::string modelOf(const core::Guest& g) { return wire::toText(persist::encode(g, "test")); }

}  // namespace tio::test
