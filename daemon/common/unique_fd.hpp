#pragma once
// The one owner of a file descriptor. Every fd the project holds lives in exactly
// one UniqueFd from the moment it is created or received; copies are explicit
// (duplicate(), which uses F_DUPFD_CLOEXEC with a minimum of 3 so a duplicate can
// never land on stdin/stdout/stderr).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <expected>
#include <utility>

namespace tio {

class UniqueFd {
public:
    UniqueFd() noexcept = default;
    explicit UniqueFd(int fd) noexcept : fd_(fd) {}
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept {
        if (this != &other) reset(std::exchange(other.fd_, -1));
        return *this;
    }
    ~UniqueFd() { reset(); }

    [[nodiscard]] int get() const noexcept { return fd_; }
    [[nodiscard]] bool valid() const noexcept { return fd_ >= 0; }
    explicit operator bool() const noexcept { return valid(); }

    // Gives up ownership; the caller becomes the owner.
    [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }

    void reset(int fd = -1) noexcept {
        if (fd_ >= 0) {
            // close() must not be retried on EINTR on Linux: the fd is gone either way.
            (void)::close(fd_);
        }
        fd_ = fd;
    }

    // A new owner of the same open file description; errno on failure (EMFILE...).
    [[nodiscard]] std::expected<UniqueFd, int> duplicate() const noexcept { return duplicateOf(fd_); }

    // A new owner of the file description behind `borrowed`, an fd someone else owns
    // (a D-Bus message's, say); errno on failure.
    [[nodiscard]] static std::expected<UniqueFd, int> duplicateOf(int borrowed) noexcept {
        const int copy = ::fcntl(borrowed, F_DUPFD_CLOEXEC, 3);
        if (copy < 0) return std::unexpected(errno);
        return UniqueFd(copy);
    }

private:
    int fd_ = -1;
};

}  // namespace tio
