#pragma once
// The one narrow boundary between tio-manager and the kernel. Everything above it
// (typed wrappers, core) is the same whether the kernel is Linux or tio-simkernel;
// only the implementation of these few calls differs (architecture.md section 4).
//
// Errors are the kernel's errno, unmapped: mapping errno to tio::Code happens once,
// in the typed wrappers (kernel_error.hpp). Not thread-safe; one event loop owns it.
#include <sys/types.h>

#include <cstdint>
#include <expected>
#include <string>
#include <vector>

#include "common/shared_mapping.hpp"
#include "common/unique_fd.hpp"

namespace tio::kernel {

template <typename T = void>
using SysResult = std::expected<T, int>;  // errno on failure

// What the kernel says an fd is: the /proc/self/fd link text (e.g.
// "anon_inode:kvm-vm", "/dev/vfio/devices/vfio0") plus stat identity.
struct FdIdentity {
    std::string link;
    dev_t dev = 0;
    ino_t ino = 0;
    dev_t rdev = 0;          // character devices only
    std::uint64_t size = 0;  // regular files, guest_memfd, memfd: fstat's st_size
};

class Syscalls {
public:
    Syscalls() = default;
    Syscalls(const Syscalls&) = delete;
    Syscalls& operator=(const Syscalls&) = delete;
    virtual ~Syscalls() = default;

    // open(2) of a device node; O_CLOEXEC is always added.
    virtual SysResult<UniqueFd> open(const std::string& path, int flags) = 0;
    // ioctl(2): `arg` is a pointer cast to an integer, or the integer argument itself.
    // Returns the non-negative result (a new fd for fd-creating ioctls; the caller owns it).
    virtual SysResult<long> ioctl(int fd, unsigned long request, unsigned long arg) = 0;
    virtual SysResult<> fallocate(int fd, int mode, std::uint64_t offset, std::uint64_t length) = 0;
    // sysfs attributes: whole-value reads and writes.
    virtual SysResult<std::string> readAttribute(const std::string& path) = 0;
    virtual SysResult<> writeAttribute(const std::string& path, const std::string& value) = 0;
    // The target of a sysfs symlink (readlink(2)), e.g. a VF's physfn: "../0000:3a:00.0".
    virtual SysResult<std::string> readLink(const std::string& path) = 0;
    // Entry names of a sysfs directory, sorted, without "." and "..".
    virtual SysResult<std::vector<std::string>> listDirectory(const std::string& path) = 0;
    virtual SysResult<FdIdentity> identify(int fd) = 0;
    // mmap(MAP_SHARED, read-write) of [offset, offset+length) of `fd` in this process.
    virtual SysResult<SharedMapping> mapShared(int fd, std::uint64_t offset, std::uint64_t length) = 0;
};

}  // namespace tio::kernel
