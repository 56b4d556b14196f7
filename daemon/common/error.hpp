#pragma once
// Errors are values. Core and kernel layers return Result<T>; the closed set of
// codes is mapped to D-Bus error names in exactly one place (daemon/dbus/).
#include <cstdint>
#include <expected>
#include <string>
#include <string_view>

namespace tio {

enum class Code : std::uint8_t {
    InvalidArgument,  // malformed or out-of-range input
    InvalidState,     // lifecycle order violated; message names the step that must come first
    NotFound,
    Busy,          // still referenced, or claimed by another guest
    AccessDenied,  // policy or identity
    NotSupported,  // kernel or platform lacks it
    LimitExceeded,
    Kernel,  // an ioctl failed; message names the ioctl and errno
    Revoked,
    ShuttingDown,
    Internal,  // a bug
};

[[nodiscard]] std::string_view toString(Code code) noexcept;

struct Error {
    Code code = Code::Internal;
    std::string message;
    int sys_errno = 0;  // the kernel's errno when the error came from a syscall, else 0

    friend bool operator==(const Error&, const Error&) = default;
};

template <typename T = void>
using Result = std::expected<T, Error>;

[[nodiscard]] inline std::unexpected<Error> fail(Code code, std::string message, int sys_errno = 0) {
    return std::unexpected(Error{code, std::move(message), sys_errno});
}

}  // namespace tio
