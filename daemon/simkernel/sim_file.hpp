#pragma once
// A simulated open file description. Its lifetime follows the kernel's struct file:
// one reference for "userspace still holds an fd" (the connection; dropped on EOF,
// i.e. when the last copy of the client end closes) plus one per kernel-internal
// holder (a bound VFIO device holds its iommufd, KVM-VFIO holds the VFIO files added
// to it, a guest_memfd holds its VM...). The file is released when the count hits 0,
// exactly like fput() -> ->release().
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/unique_fd.hpp"
#include "kernel/ioctl_table.hpp"

namespace tio::sim {

class SimKernel;

// One decoded ioctl: the struct as the kernel sees it (zero-extended to the size we
// know), the pointed-to buffers, and the fds that travelled with it.
struct IoctlCall {
    const kernel::IoctlDesc* desc = nullptr;
    std::uint64_t value = 0;                      // ArgKind::Value
    std::vector<std::uint8_t> arg;                // struct bytes, at least desc->our_size long
    std::vector<std::vector<std::uint8_t>> bufs;  // one per desc->pointers entry
    std::vector<UniqueFd> fds;                    // fd_in first, then pointer fds
    UniqueFd out_fd;                              // a new file for returns_fd/out_fd_offset
    // The calling process (its thread group), from kernel-verified credentials: the
    // simulator's `current`. Never taken from the request.
    pid_t caller = 0;
    // fail-nth asked for the kernel's partial progress (EAGAIN after doing a prefix).
    bool stop_partway = false;

    template <typename T>
    [[nodiscard]] T get() const {
        T v{};
        __builtin_memcpy(&v, arg.data(), sizeof v);
        return v;
    }
    template <typename T>
    void put(const T& v) {
        __builtin_memcpy(arg.data(), &v, sizeof v);
    }
};

class SimFile {
public:
    explicit SimFile(SimKernel& kernel) : kernel_(kernel) {}
    SimFile(const SimFile&) = delete;
    SimFile& operator=(const SimFile&) = delete;
    virtual ~SimFile() = default;

    // What readlink(/proc/self/fd/N) shows for the real file.
    [[nodiscard]] virtual std::string link() const = 0;
    [[nodiscard]] virtual dev_t rdev() const { return 0; }
    // What fstat says of its size (a guest_memfd's; 0 for device files).
    [[nodiscard]] virtual std::uint64_t size() const { return 0; }
    // Returns the ioctl's non-negative result or a negative errno.
    virtual long ioctl(IoctlCall& call) = 0;
    virtual int fallocate(int /*mode*/, std::uint64_t /*offset*/, std::uint64_t /*length*/) { return -ENODEV; }
    // The fd whose pages mmap of this file shows (a guest_memfd's memfd), or -errno:
    // ENODEV for files that cannot be mapped.
    [[nodiscard]] virtual int pagesFd() const { return -ENODEV; }

    void get() noexcept { ++refs_; }
    void put() noexcept;

protected:
    // Drops everything this file holds; runs once, when the last reference goes.
    virtual void release() {}
    SimKernel& kernel_;

private:
    unsigned long refs_ = 0;
};

// An owning reference to a SimFile (fget/fput).
template <typename F>
class FileRef {
public:
    FileRef() = default;
    explicit FileRef(F* f) : f_(f) {
        if (f_ != nullptr) f_->get();
    }
    FileRef(const FileRef& o) : FileRef(o.f_) {}
    FileRef(FileRef&& o) noexcept : f_(std::exchange(o.f_, nullptr)) {}
    FileRef& operator=(FileRef o) noexcept {
        std::swap(f_, o.f_);
        return *this;
    }
    ~FileRef() { reset(); }
    void reset() {
        if (F* f = std::exchange(f_, nullptr)) f->put();
    }
    [[nodiscard]] F* get() const { return f_; }
    F* operator->() const { return f_; }
    explicit operator bool() const { return f_ != nullptr; }

private:
    F* f_ = nullptr;
};

}  // namespace tio::sim
