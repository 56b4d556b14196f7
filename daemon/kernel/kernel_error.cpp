#include "kernel/kernel_error.hpp"

#include <array>
#include <cerrno>
#include <string>

namespace tio::kernel {
namespace {

struct ErrnoName {
    int err;
    std::string_view name;
};
// A table, laid out to be read as one.
// clang-format off
constexpr std::array kErrnos = {
    ErrnoName{EPERM, "EPERM"},     ErrnoName{ENOENT, "ENOENT"},   ErrnoName{EINTR, "EINTR"},
    ErrnoName{EIO, "EIO"},         ErrnoName{ENXIO, "ENXIO"},     ErrnoName{E2BIG, "E2BIG"},
    ErrnoName{EBADF, "EBADF"},     ErrnoName{EAGAIN, "EAGAIN"},   ErrnoName{ENOMEM, "ENOMEM"},
    ErrnoName{EACCES, "EACCES"},   ErrnoName{EFAULT, "EFAULT"},   ErrnoName{EBUSY, "EBUSY"},
    ErrnoName{EEXIST, "EEXIST"},   ErrnoName{ENODEV, "ENODEV"},   ErrnoName{EINVAL, "EINVAL"},
    ErrnoName{ENOSPC, "ENOSPC"},   ErrnoName{ENOTTY, "ENOTTY"},   ErrnoName{EMFILE, "EMFILE"},
    ErrnoName{ERANGE, "ERANGE"},   ErrnoName{EMSGSIZE, "EMSGSIZE"}, ErrnoName{EOPNOTSUPP, "EOPNOTSUPP"},
    ErrnoName{EOVERFLOW, "EOVERFLOW"}, ErrnoName{ETIMEDOUT, "ETIMEDOUT"}, ErrnoName{EBADFD, "EBADFD"},
    ErrnoName{EPIPE, "EPIPE"},     ErrnoName{ECONNREFUSED, "ECONNREFUSED"}, ErrnoName{EPROTO, "EPROTO"},
    ErrnoName{EADDRINUSE, "EADDRINUSE"}, ErrnoName{ENOSYS, "ENOSYS"}, ErrnoName{EALREADY, "EALREADY"},
    ErrnoName{ECANCELED, "ECANCELED"}, ErrnoName{ESRCH, "ESRCH"}, ErrnoName{EROFS, "EROFS"},
    ErrnoName{ENAMETOOLONG, "ENAMETOOLONG"}, ErrnoName{ECONNRESET, "ECONNRESET"}, ErrnoName{ENOTCONN, "ENOTCONN"},
    ErrnoName{EDEADLK, "EDEADLK"}, ErrnoName{ENOTDIR, "ENOTDIR"}, ErrnoName{EISDIR, "EISDIR"},
    ErrnoName{ENFILE, "ENFILE"},   ErrnoName{EXDEV, "EXDEV"},     ErrnoName{ENOTSOCK, "ENOTSOCK"},
    ErrnoName{ESPIPE, "ESPIPE"},   ErrnoName{EADDRNOTAVAIL, "EADDRNOTAVAIL"}, ErrnoName{ENOBUFS, "ENOBUFS"},
};
// clang-format on

}  // namespace

std::string_view errnoName(int err) noexcept {
    for (const auto& e : kErrnos)
        if (e.err == err) return e.name;
    return "";
}

int errnoFromName(std::string_view name) noexcept {
    for (const auto& e : kErrnos)
        if (e.name == name) return e.err;
    return 0;
}

Error kernelError(std::string_view operation, int err) {
    Code code = Code::Kernel;
    switch (err) {
        case ENOTTY:
        case EOPNOTSUPP: code = Code::NotSupported; break;
        case EBUSY: code = Code::Busy; break;
        case EPERM:
        case EACCES: code = Code::AccessDenied; break;
        default: break;
    }
    std::string name(errnoName(err));
    if (name.empty()) name = "errno " + std::to_string(err);
    return Error{code, std::string(operation) + " failed: " + name, err};
}

}  // namespace tio::kernel
