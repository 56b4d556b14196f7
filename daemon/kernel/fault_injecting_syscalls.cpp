#include "kernel/fault_injecting_syscalls.hpp"

namespace tio::kernel {

int FaultInjectingSyscalls::nextCall() noexcept {
    ++calls_;
    if (sticky_ && consumed_) return err_;
    if (consumed_ && then_ != 0 && --then_ == 0) {
        second_consumed_ = true;
        return err_;
    }
    if (countdown_ == 0) return 0;
    if (--countdown_ != 0) return 0;
    consumed_ = true;
    return err_;
}

SysResult<UniqueFd> FaultInjectingSyscalls::open(const std::string& path, int flags) {
    if (const int e = nextCall()) return std::unexpected(e);
    return ForwardingSyscalls::open(path, flags);
}
SysResult<long> FaultInjectingSyscalls::ioctl(int fd, unsigned long request, unsigned long arg) {
    if (const int e = nextCall()) return std::unexpected(e);
    return ForwardingSyscalls::ioctl(fd, request, arg);
}
SysResult<> FaultInjectingSyscalls::fallocate(int fd, int mode, std::uint64_t offset, std::uint64_t length) {
    if (const int e = nextCall()) return std::unexpected(e);
    return ForwardingSyscalls::fallocate(fd, mode, offset, length);
}
SysResult<std::string> FaultInjectingSyscalls::readAttribute(const std::string& path) {
    if (const int e = nextCall()) return std::unexpected(e);
    return ForwardingSyscalls::readAttribute(path);
}
SysResult<std::string> FaultInjectingSyscalls::readLink(const std::string& path) {
    if (const int e = nextCall()) return std::unexpected(e);
    return ForwardingSyscalls::readLink(path);
}
SysResult<> FaultInjectingSyscalls::writeAttribute(const std::string& path, const std::string& value) {
    if (const int e = nextCall()) return std::unexpected(e);
    return ForwardingSyscalls::writeAttribute(path, value);
}
SysResult<std::vector<std::string>> FaultInjectingSyscalls::listDirectory(const std::string& path) {
    if (const int e = nextCall()) return std::unexpected(e);
    return ForwardingSyscalls::listDirectory(path);
}
SysResult<FdIdentity> FaultInjectingSyscalls::identify(int fd) {
    if (const int e = nextCall()) return std::unexpected(e);
    return ForwardingSyscalls::identify(fd);
}

SysResult<SharedMapping> FaultInjectingSyscalls::mapShared(int fd, std::uint64_t offset, std::uint64_t length) {
    if (const int e = nextCall()) return std::unexpected(e);
    return ForwardingSyscalls::mapShared(fd, offset, length);
}

}  // namespace tio::kernel
