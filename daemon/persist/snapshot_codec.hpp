#pragma once
// The guest as a tio.v1.GuestSnapshot, both directions side by side: encode() reads
// the core's read model; decode() turns a stored snapshot and the fds kept beside
// it into a core::GuestImage for Guest::restore. The core knows neither the
// encoding nor the fd store's names: it tells its subscribers it changed (the model
// saves itself, as machined's machine_save() is called by the model), and this is
// what the persister writes.
#include <map>
#include <string>
#include <string_view>

#include "common/unique_fd.hpp"
#include "core/guest.hpp"
#include "tio/v1/guest_snapshot.pb.h"

namespace tio::persist {

[[nodiscard]] v1::GuestSnapshot encode(const core::Guest& guest, std::string_view backend);

// Takes from `fds` (by their fd-store names) every fd the snapshot names; the
// rest stay there. Regions on one guest_memfd each get a duplicate of it.
[[nodiscard]] core::GuestImage decode(const v1::GuestSnapshot& s, std::map<std::string, UniqueFd>& fds);

}  // namespace tio::persist
