#pragma once
#include "kernel/syscalls.hpp"

namespace tio::kernel {

// The real kernel: plain syscalls, nothing else.
class LinuxSyscalls final : public Syscalls {
public:
    SysResult<UniqueFd> open(const std::string& path, int flags) override;
    SysResult<long> ioctl(int fd, unsigned long request, unsigned long arg) override;
    SysResult<> fallocate(int fd, int mode, std::uint64_t offset, std::uint64_t length) override;
    SysResult<std::string> readAttribute(const std::string& path) override;
    SysResult<std::string> readLink(const std::string& path) override;
    SysResult<> writeAttribute(const std::string& path, const std::string& value) override;
    SysResult<std::vector<std::string>> listDirectory(const std::string& path) override;
    SysResult<FdIdentity> identify(int fd) override;
    SysResult<SharedMapping> mapShared(int fd, std::uint64_t offset, std::uint64_t length) override;
};

// True when /dev/kvm can be opened read-write by this process.
[[nodiscard]] bool hostKvmUsable();

}  // namespace tio::kernel
