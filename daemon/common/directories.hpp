#pragma once
// Making a directory and its missing parents, as `mkdir -p` does.
#include <sys/types.h>

#include <expected>
#include <string>

namespace tio {

// Makes `path` and each missing directory above it with `mode` (less the umask); an
// existing directory is fine. The errno of the first mkdir that failed otherwise.
//
// What std::filesystem::create_directories does, without libstdc++'s filesystem
// code: calling it maps 64 KiB more of libstdc++ into every idle tio-managerd
// (issue 13, README "Many guests").
std::expected<void, int> makeDirectories(const std::string& path, mode_t mode);

}  // namespace tio
