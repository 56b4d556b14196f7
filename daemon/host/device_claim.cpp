#include "host/device_claim.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <cerrno>

#include "kernel/kernel_error.hpp"

namespace tio::host {

Result<DeviceClaim> DeviceClaim::acquire(const std::string& lock_dir, const Bdf& bdf) {
    const std::string path = lock_dir + "/" + bdf.toString() + ".lock";
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) return std::unexpected(kernel::kernelError("open " + path, errno));
    // Each open() is its own open file description, so a second claim in the same
    // process conflicts exactly like one from another process.
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK) return fail(Code::Busy, bdf.toString() + " is claimed by another guest");
        return std::unexpected(kernel::kernelError("flock " + path, errno));
    }
    return DeviceClaim(std::move(fd));
}

Result<DeviceClaim> DeviceClaim::adopt(UniqueFd fd) {
    if (!fd || ::flock(fd.get(), LOCK_EX | LOCK_NB) < 0) return fail(Code::Busy, "the stored claim is not held");
    return DeviceClaim(std::move(fd));
}

}  // namespace tio::host
