#pragma once
// The guest's model as a tio.v1.GuestSnapshot. Persistence lives apart from the
// model (machined keeps machine.c and its serialisation separate for the same reason).
#include <string_view>

#include "core/guest.hpp"
#include "tio/v1/guest_snapshot.pb.h"

namespace tio::core {

[[nodiscard]] v1::GuestSnapshot snapshot(const Guest& guest, std::string_view backend);

}  // namespace tio::core
