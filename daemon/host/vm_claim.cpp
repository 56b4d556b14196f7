#include "host/vm_claim.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "kernel/kernel_error.hpp"

namespace tio::host {
namespace {

constexpr std::string_view kPrefix = "vm.";
constexpr std::string_view kSuffix = ".claim";

// Whether the registration at `path` is live (its owner holds its flock) and names
// the same open file as our `vm_fd`.
bool holdsSameVm(const std::string& path, int vm_fd) {
    const UniqueFd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!f) return false;
    if (::flock(f.get(), LOCK_SH | LOCK_NB) == 0) return false;  // nobody holds it: a dead daemon's
    char text[64] = {};
    if (::pread(f.get(), text, sizeof text - 1, 0) <= 0) return false;
    long pid = 0;
    int fd = -1;
    if (std::sscanf(text, "%ld %d", &pid, &fd) != 2 || pid <= 0 || fd < 0) return false;
    // 0: the same struct file. Anything else (another file, a pid gone or not ours to
    // inspect) is not a match.
    return ::syscall(SYS_kcmp, static_cast<pid_t>(::getpid()), static_cast<pid_t>(pid), KCMP_FILE, vm_fd, fd) == 0;
}

}  // namespace

VmClaim::~VmClaim() {
    if (fd_) (void)::unlink(path_.c_str());  // before the flock goes: nobody reads it stale
}

Result<VmClaim> VmClaim::acquire(const std::string& dir, const std::string& guest, int vm_fd) {
    const std::string lock_path = dir + "/vm.lock";
    const UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!lock) return std::unexpected(kernel::kernelError("open " + lock_path, errno));
    if (::flock(lock.get(), LOCK_EX) < 0) return std::unexpected(kernel::kernelError("flock " + lock_path, errno));
    const std::string mine = std::string(kPrefix) + guest + std::string(kSuffix);
    if (DIR* d = ::opendir(dir.c_str()); d != nullptr) {
        std::string holder;
        while (const dirent* e = ::readdir(d)) {
            const std::string_view name(e->d_name);
            if (!name.starts_with(kPrefix) || !name.ends_with(kSuffix) || name == mine) continue;
            if (holdsSameVm(dir + "/" + std::string(name), vm_fd)) {
                holder = name.substr(kPrefix.size(), name.size() - kPrefix.size() - kSuffix.size());
                break;
            }
        }
        ::closedir(d);
        if (!holder.empty()) return fail(Code::Busy, "the VM is held by guest " + holder + "'s daemon");
    }
    const std::string path = dir + "/" + mine;
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) return std::unexpected(kernel::kernelError("open " + path, errno));
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK) return fail(Code::Busy, "guest " + guest + " already holds a VM in another daemon");
        return std::unexpected(kernel::kernelError("flock " + path, errno));
    }
    const std::string text = std::to_string(::getpid()) + " " + std::to_string(vm_fd) + "\n";
    if (::ftruncate(fd.get(), 0) < 0 ||
        ::pwrite(fd.get(), text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
        return std::unexpected(kernel::kernelError("write " + path, errno));
    }
    return VmClaim(path, std::move(fd));
}

}  // namespace tio::host
