#pragma once
#include <string>

#include "common/unique_fd.hpp"
#include "kernel/syscalls.hpp"

namespace tio::dbus {

// A listening AF_UNIX socket at `path` (replacing a stale socket file) with `mode`.
// Bound and listening under a temporary name, then renamed into place: the path
// appears only once connect() can succeed, so clients may simply wait for the file.
[[nodiscard]] kernel::SysResult<UniqueFd> listenUnix(const std::string& path, int type, unsigned mode = 0600);

}  // namespace tio::dbus
