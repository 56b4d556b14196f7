#pragma once
// The one owner of a shared memory mapping (mmap MAP_SHARED of a file): unmapped
// when the owner goes, as UniqueFd closes.
#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <utility>

namespace tio {

class SharedMapping {
public:
    SharedMapping() noexcept = default;
    SharedMapping(void* base, std::size_t length) noexcept : base_(base), length_(length) {}
    SharedMapping(const SharedMapping&) = delete;
    SharedMapping& operator=(const SharedMapping&) = delete;
    SharedMapping(SharedMapping&& o) noexcept
        : base_(std::exchange(o.base_, nullptr)), length_(std::exchange(o.length_, 0)) {}
    SharedMapping& operator=(SharedMapping&& o) noexcept {
        if (this != &o) {
            reset();
            base_ = std::exchange(o.base_, nullptr);
            length_ = std::exchange(o.length_, 0);
        }
        return *this;
    }
    ~SharedMapping() { reset(); }

    [[nodiscard]] std::uint64_t address() const noexcept { return reinterpret_cast<std::uint64_t>(base_); }
    [[nodiscard]] std::size_t length() const noexcept { return length_; }
    explicit operator bool() const noexcept { return base_ != nullptr; }

    void reset() noexcept {
        if (base_ != nullptr) (void)::munmap(base_, length_);
        base_ = nullptr;
        length_ = 0;
    }

private:
    void* base_ = nullptr;
    std::size_t length_ = 0;
};

}  // namespace tio
