#pragma once
// A Syscalls that passes every call to another: the base of decorators that change
// one kind of call (a test's missing ioctls, a benchmark's counting) and leave the
// rest alone.
#include "kernel/syscalls.hpp"

namespace tio::kernel {

class ForwardingSyscalls : public Syscalls {
public:
    explicit ForwardingSyscalls(Syscalls& inner) : inner_(inner) {}
    SysResult<UniqueFd> open(const std::string& path, int flags) override { return inner_.open(path, flags); }
    SysResult<long> ioctl(int fd, unsigned long request, unsigned long arg) override {
        return inner_.ioctl(fd, request, arg);
    }
    SysResult<> fallocate(int fd, int mode, std::uint64_t offset, std::uint64_t length) override {
        return inner_.fallocate(fd, mode, offset, length);
    }
    SysResult<std::string> readAttribute(const std::string& path) override { return inner_.readAttribute(path); }
    SysResult<std::string> readLink(const std::string& path) override { return inner_.readLink(path); }
    SysResult<> writeAttribute(const std::string& path, const std::string& value) override {
        return inner_.writeAttribute(path, value);
    }
    SysResult<std::vector<std::string>> listDirectory(const std::string& path) override {
        return inner_.listDirectory(path);
    }
    SysResult<FdIdentity> identify(int fd) override { return inner_.identify(fd); }
    SysResult<SharedMapping> mapShared(int fd, std::uint64_t offset, std::uint64_t length) override {
        return inner_.mapShared(fd, offset, length);
    }

protected:
    [[nodiscard]] Syscalls& inner() { return inner_; }

private:
    Syscalls& inner_;
};

}  // namespace tio::kernel
