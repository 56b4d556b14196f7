#pragma once
#include <string_view>

#include "common/error.hpp"

namespace tio::kernel {

// The one place errno becomes a tio::Code. ENOTTY means the ioctl does not exist and
// EOPNOTSUPP that a flag/type is unknown (kernel-uapi.md 1.2): both are NotSupported.
// EBUSY is Busy (a kernel object is still referenced). EPERM/EACCES are AccessDenied.
// Everything else is Kernel, with a message naming the operation and the errno.
[[nodiscard]] Error kernelError(std::string_view operation, int err);

// Symbolic errno names (ENOMEM...) for logs, error messages and the simulator's
// InjectFailure; 0 / "" when unknown.
[[nodiscard]] std::string_view errnoName(int err) noexcept;
[[nodiscard]] int errnoFromName(std::string_view name) noexcept;

}  // namespace tio::kernel
