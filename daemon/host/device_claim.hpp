#pragma once
// Host-wide exclusive claim of a PCI function (host state, not a kernel object: it
// lives beside kernel/, not behind its syscall boundary): an flock on
// <dir>/<bdf>.lock, so two tio-manager instances (one per guest) can never both hold
// a device. The kernel drops the lock when the fd closes, including on crash.
#include <string>

#include "common/bdf.hpp"
#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace tio::host {

class DeviceClaim {
public:
    // Busy when another process (or another claim in this one) holds it.
    [[nodiscard]] static Result<DeviceClaim> acquire(const std::string& lock_dir, const Bdf& bdf);
    // A claim held by an fd from before a restart (the fd store): the flock belongs to
    // the open file description, so taking it again on the same fd succeeds, and
    // proves the fd still holds it.
    [[nodiscard]] static Result<DeviceClaim> adopt(UniqueFd fd);
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }

private:
    explicit DeviceClaim(UniqueFd fd) : fd_(std::move(fd)) {}
    UniqueFd fd_;
};

}  // namespace tio::host
