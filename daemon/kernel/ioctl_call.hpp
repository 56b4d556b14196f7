#pragma once
// Issue one ioctl through the boundary and turn a failure into a named tio::Error.
#include <string>

#include "kernel/ioctl_table.hpp"
#include "kernel/kernel_error.hpp"
#include "kernel/syscalls.hpp"

namespace tio::kernel {

[[nodiscard]] inline std::string_view ioctlName(unsigned long request) {
    const IoctlDesc* d = findIoctl(request);
    return d != nullptr ? d->name : std::string_view("ioctl");
}

template <typename T>
[[nodiscard]] Result<long> ioctlStruct(Syscalls& sys, int fd, unsigned long request, T& arg) {
    auto r = sys.ioctl(fd, request, reinterpret_cast<unsigned long>(&arg));
    if (!r) return std::unexpected(kernelError(ioctlName(request), r.error()));
    return *r;
}

[[nodiscard]] inline Result<long> ioctlValue(Syscalls& sys, int fd, unsigned long request, unsigned long value) {
    auto r = sys.ioctl(fd, request, value);
    if (!r) return std::unexpected(kernelError(ioctlName(request), r.error()));
    return *r;
}

// Defensive post-condition (style B.4 item 66): a kernel that reports success with an
// impossible output (object id 0, fd < 0) is a bug we refuse to build on.
[[nodiscard]] inline Result<> requireOutput(bool plausible, unsigned long request, std::string_view what) {
    if (plausible) return {};
    return fail(Code::Internal, std::string(ioctlName(request)) + " returned an implausible " + std::string(what));
}

}  // namespace tio::kernel
