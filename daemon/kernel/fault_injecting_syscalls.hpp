#pragma once
// fail-nth at the kernel boundary (style B.3 T3, after iommufd_fail_nth.c): counts
// every call that can fail and makes the armed n-th one fail with the armed errno
// without reaching the kernel. consumed() tells a sweep whether the fault was hit;
// when it was not, every failure point of the scenario has been covered.
#include "kernel/forwarding_syscalls.hpp"

namespace tio::kernel {

class FaultInjectingSyscalls final : public ForwardingSyscalls {
public:
    explicit FaultInjectingSyscalls(Syscalls& inner) : ForwardingSyscalls(inner) {}

    // The n-th next call (1 = the very next) fails with `err`. n = 0 disarms.
    void armFailNth(unsigned n, int err) noexcept {
        countdown_ = n;
        err_ = err;
        consumed_ = false;
        sticky_ = false;
        then_ = 0;
        second_consumed_ = false;
    }
    // The n-th next call fails, and so does the m-th call after it (m >= 1: one of
    // the undo steps of that failure, say).
    void armFailTwice(unsigned n, unsigned m, int err) noexcept {
        armFailNth(n, err);
        then_ = m;
    }
    [[nodiscard]] bool secondConsumed() const noexcept { return second_consumed_; }
    // The n-th next call and every one after it fail with `err` (a failure and every
    // undo of it), until disarmed.
    void armFailFrom(unsigned n, int err) noexcept {
        armFailNth(n, err);
        sticky_ = true;
    }
    [[nodiscard]] bool consumed() const noexcept { return consumed_; }
    [[nodiscard]] unsigned long calls() const noexcept { return calls_; }

    SysResult<UniqueFd> open(const std::string& path, int flags) override;
    SysResult<long> ioctl(int fd, unsigned long request, unsigned long arg) override;
    SysResult<> fallocate(int fd, int mode, std::uint64_t offset, std::uint64_t length) override;
    SysResult<std::string> readAttribute(const std::string& path) override;
    SysResult<std::string> readLink(const std::string& path) override;
    SysResult<> writeAttribute(const std::string& path, const std::string& value) override;
    SysResult<std::vector<std::string>> listDirectory(const std::string& path) override;
    SysResult<FdIdentity> identify(int fd) override;
    SysResult<SharedMapping> mapShared(int fd, std::uint64_t offset, std::uint64_t length) override;

private:
    // 0 when this call proceeds, the injected errno when it fails.
    int nextCall() noexcept;

    unsigned countdown_ = 0;
    int err_ = 0;
    bool consumed_ = false;
    bool sticky_ = false;
    unsigned then_ = 0;  // armFailTwice: calls from the first failure to the second
    bool second_consumed_ = false;
    unsigned long calls_ = 0;
};

}  // namespace tio::kernel
