#pragma once
// Starting the project's processes from tests.
#include <sys/types.h>

#include <string>
#include <vector>

namespace tio::test {

// posix_spawn of args[0] with this environment plus `env_extra` ("NAME=value").
// Throws when the process cannot be started.
[[nodiscard]] pid_t spawnProcess(std::vector<std::string> args, const std::vector<std::string>& env_extra = {});

// Waits (bounded, see eventually()) until `path` exists; throws naming `what` when
// it never appears. The project's servers create their socket paths only once they
// accept connections.
void waitForPath(const std::string& path, const char* what);

// Sends `sig` to `pid` (if it is > 0), reaps it, sets it to -1; returns the waitpid
// status (0 when there was nothing to stop).
int stopProcess(pid_t& pid, int sig);

}  // namespace tio::test
