#pragma once
#include <cstddef>

namespace tio::test {

// Open fds of this process (entries of /proc/self/fd, minus the one used to list it).
[[nodiscard]] std::size_t openFdCount();

}  // namespace tio::test
