#pragma once
// Generic transport, shared by the daemon's doors and the simulator's sockets.
#include <expected>
#include <string>

#include "common/unique_fd.hpp"

namespace tio::bus {

// A listening AF_UNIX socket at `path` (replacing a stale socket file) with `mode`.
// Bound and listening under a temporary name, then renamed into place: the path
// appears only once connect() can succeed, so clients may simply wait for the file.
// errno on failure.
[[nodiscard]] std::expected<UniqueFd, int> listenUnix(const std::string& path, int type, unsigned mode = 0600);

}  // namespace tio::bus
