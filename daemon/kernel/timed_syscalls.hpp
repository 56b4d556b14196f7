#pragma once
// A Syscalls that counts the calls it passes on and the wall time spent inside them:
// how much of a start-up or a conversion is the kernel's and how much the daemon's
// own. Two steady_clock reads per call (vDSO, tens of nanoseconds) against a kernel
// call of a microsecond or more.
#include <chrono>
#include <cstdint>
#include <type_traits>

#include "kernel/forwarding_syscalls.hpp"

namespace tio::kernel {

class TimedSyscalls : public ForwardingSyscalls {
public:
    using Clock = std::chrono::steady_clock;
    using ForwardingSyscalls::ForwardingSyscalls;

    // Every call so far, and the time spent inside them.
    [[nodiscard]] std::uint64_t calls() const noexcept { return calls_; }
    [[nodiscard]] Clock::duration inside() const noexcept { return inside_; }

    SysResult<UniqueFd> open(const std::string& path, int flags) override {
        return timed([&] { return inner().open(path, flags); });
    }
    SysResult<long> ioctl(int fd, unsigned long request, unsigned long arg) override {
        return timed([&] { return inner().ioctl(fd, request, arg); });
    }
    SysResult<> fallocate(int fd, int mode, std::uint64_t offset, std::uint64_t length) override {
        return timed([&] { return inner().fallocate(fd, mode, offset, length); });
    }
    SysResult<std::string> readAttribute(const std::string& path) override {
        return timed([&] { return inner().readAttribute(path); });
    }
    SysResult<std::string> readLink(const std::string& path) override {
        return timed([&] { return inner().readLink(path); });
    }
    SysResult<> writeAttribute(const std::string& path, const std::string& value) override {
        return timed([&] { return inner().writeAttribute(path, value); });
    }
    SysResult<std::vector<std::string>> listDirectory(const std::string& path) override {
        return timed([&] { return inner().listDirectory(path); });
    }
    SysResult<FdIdentity> identify(int fd) override {
        return timed([&] { return inner().identify(fd); });
    }
    SysResult<SharedMapping> mapShared(int fd, std::uint64_t offset, std::uint64_t length) override {
        return timed([&] { return inner().mapShared(fd, offset, length); });
    }

private:
    template <typename Call>
    std::invoke_result_t<Call> timed(Call&& call) {
        const auto start = Clock::now();
        auto result = call();
        inside_ += Clock::now() - start;
        ++calls_;
        return result;
    }

    std::uint64_t calls_ = 0;
    Clock::duration inside_{};
};

}  // namespace tio::kernel
