#include "kernel/linux_syscalls.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <memory>

namespace tio::kernel {
namespace {

// sysfs attributes are at most one page (PAGE_SIZE) by sysfs' own rule.
constexpr std::size_t kMaxAttributeBytes = 4096;

template <typename F>
auto retryEintr(F&& f) {
    for (;;) {
        auto r = f();
        if (r >= 0 || errno != EINTR) return r;
    }
}

}  // namespace

SysResult<UniqueFd> LinuxSyscalls::open(const std::string& path, int flags) {
    const int fd = retryEintr([&] { return ::open(path.c_str(), flags | O_CLOEXEC); });
    if (fd < 0) return std::unexpected(errno);
    return UniqueFd(fd);
}

SysResult<long> LinuxSyscalls::ioctl(int fd, unsigned long request, unsigned long arg) {
    // Not retried on EINTR: ioctls are not idempotent in general (style B.4 item 64).
    const int r = ::ioctl(fd, request, arg);
    if (r < 0) return std::unexpected(errno);
    return static_cast<long>(r);
}

SysResult<> LinuxSyscalls::fallocate(int fd, int mode, std::uint64_t offset, std::uint64_t length) {
    if (offset > static_cast<std::uint64_t>(LLONG_MAX) || length > static_cast<std::uint64_t>(LLONG_MAX))
        return std::unexpected(EINVAL);
    const int r =
        retryEintr([&] { return ::fallocate(fd, mode, static_cast<off_t>(offset), static_cast<off_t>(length)); });
    if (r < 0) return std::unexpected(errno);
    return {};
}

SysResult<std::string> LinuxSyscalls::readAttribute(const std::string& path) {
    auto fd = open(path, O_RDONLY);
    if (!fd) return std::unexpected(fd.error());
    std::string out(kMaxAttributeBytes, '\0');
    const ssize_t n = retryEintr([&] { return ::read(fd->get(), out.data(), out.size()); });
    if (n < 0) return std::unexpected(errno);
    out.resize(static_cast<std::size_t>(n));
    return out;
}

SysResult<std::string> LinuxSyscalls::readLink(const std::string& path) {
    std::string out(PATH_MAX, '\0');
    const ssize_t n = ::readlink(path.c_str(), out.data(), out.size());
    if (n < 0) return std::unexpected(errno);
    if (static_cast<std::size_t>(n) == out.size()) return std::unexpected(ENAMETOOLONG);
    out.resize(static_cast<std::size_t>(n));
    return out;
}

SysResult<> LinuxSyscalls::writeAttribute(const std::string& path, const std::string& value) {
    auto fd = open(path, O_WRONLY);
    if (!fd) return std::unexpected(fd.error());
    // sysfs takes one write() as the whole value; a short write is a failure.
    const ssize_t n = retryEintr([&] { return ::write(fd->get(), value.data(), value.size()); });
    if (n < 0) return std::unexpected(errno);
    if (static_cast<std::size_t>(n) != value.size()) return std::unexpected(EIO);
    return {};
}

SysResult<std::vector<std::string>> LinuxSyscalls::listDirectory(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return std::unexpected(errno);
    std::unique_ptr<DIR, int (*)(DIR*)> dir(::fdopendir(fd), ::closedir);
    if (!dir) {
        const int err = errno;
        ::close(fd);
        return std::unexpected(err);
    }
    std::vector<std::string> names;
    while (const dirent* e = ::readdir(dir.get())) {
        const std::string_view n = e->d_name;
        if (n != "." && n != "..") names.emplace_back(n);
    }
    std::sort(names.begin(), names.end());
    return names;
}

SysResult<FdIdentity> LinuxSyscalls::identify(int fd) {
    struct stat st {};
    if (::fstat(fd, &st) < 0) return std::unexpected(errno);
    std::array<char, 256> buf{};
    const std::string proc = "/proc/self/fd/" + std::to_string(fd);
    const ssize_t n = ::readlink(proc.c_str(), buf.data(), buf.size() - 1);
    if (n < 0) return std::unexpected(errno);
    FdIdentity id;
    id.link.assign(buf.data(), static_cast<std::size_t>(n));
    id.dev = st.st_dev;
    id.ino = st.st_ino;
    id.rdev = S_ISCHR(st.st_mode) ? st.st_rdev : 0;
    id.size = st.st_size > 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
    return id;
}

SysResult<SharedMapping> LinuxSyscalls::mapShared(int fd, std::uint64_t offset, std::uint64_t length) {
    void* base = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(offset));
    if (base == MAP_FAILED) return std::unexpected(errno);
    return SharedMapping(base, length);
}

bool hostKvmUsable() {
    const int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) return false;
    ::close(fd);
    return true;
}

}  // namespace tio::kernel
