#pragma once
// A kernel that counts what reaches it and succeeds at everything: the inner end
// of a Syscalls decorator under test.
#include "kernel/syscalls.hpp"

namespace tio::test {

class RecordingSyscalls : public kernel::Syscalls {
public:
    int reached = 0;
    kernel::SysResult<UniqueFd> open(const std::string&, int) override { return ++reached, UniqueFd(); }
    kernel::SysResult<long> ioctl(int, unsigned long, unsigned long) override { return ++reached, 0L; }
    kernel::SysResult<> fallocate(int, int, std::uint64_t, std::uint64_t) override {
        return ++reached, kernel::SysResult<>{};
    }
    kernel::SysResult<std::string> readAttribute(const std::string&) override { return ++reached, std::string(); }
    kernel::SysResult<std::string> readLink(const std::string&) override { return ++reached, std::string(); }
    kernel::SysResult<> writeAttribute(const std::string&, const std::string&) override {
        return ++reached, kernel::SysResult<>{};
    }
    kernel::SysResult<std::vector<std::string>> listDirectory(const std::string&) override {
        return ++reached, std::vector<std::string>();
    }
    kernel::SysResult<kernel::FdIdentity> identify(int) override { return ++reached, kernel::FdIdentity{}; }
    kernel::SysResult<SharedMapping> mapShared(int, std::uint64_t, std::uint64_t) override {
        return ++reached, SharedMapping();
    }
};

}  // namespace tio::test
