#pragma once
// What the kernel knows implicitly about each ioctl we issue: how big its argument
// is, which fields are user pointers (and how long the buffer behind them is), which
// fields carry file descriptors. The simulated-kernel transport needs this to move
// an ioctl across a socket exactly as the real kernel would read it (strace keeps a
// table like this for the same reason). Client and simulator share this one table,
// so they cannot disagree about a layout.
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace tio::kernel {

enum class ArgKind : std::uint8_t {
    None,    // no argument (VFIO_DEVICE_RESET)
    Value,   // the argument is an integer (KVM_CREATE_VM type, KVM_CHECK_EXTENSION cap)
    Struct,  // a pointer to a struct
};

enum class Direction : std::uint8_t { In, Out, InOut };

inline constexpr std::uint32_t kNoField = 0xffffffffU;

// A user pointer inside the struct and the buffer it points to.
struct PointerField {
    std::uint32_t ptr_offset = kNoField;  // offset of the u64 user pointer
    std::uint32_t len_offset = kNoField;  // offset of a u32 count/length, or kNoField for fixed_len
    std::uint32_t elem_size = 1;          // buffer bytes = count * elem_size
    std::uint32_t fixed_len = 0;
    Direction dir = Direction::In;
    bool holds_fd = false;  // the buffer is one int32 fd (KVM_DEV_VFIO_FILE_ADD's addr)
    // Present only when the u32 flags word at flag_offset has flag_mask (else 0 bytes).
    std::uint32_t flag_offset = kNoField;
    std::uint32_t flag_mask = 0;
};

// An s32/u32 fd field inside the struct, optionally present only when a flag is set.
struct FdField {
    std::uint32_t offset = kNoField;
    std::uint32_t flag_offset = kNoField;  // u32 flags word that must contain flag_mask
    std::uint32_t flag_mask = 0;
};

struct IoctlDesc {
    unsigned long request = 0;
    std::string_view name;
    ArgKind kind = ArgKind::Struct;
    // iommufd/VFIO structs start with their own u32 size/argsz; KVM encodes it in the request.
    bool size_in_struct = false;
    std::uint32_t min_size = 0;  // kernel's minimum (offsetofend of the last mandatory field)
    std::uint32_t our_size = 0;  // sizeof of the struct we carry
    std::array<PointerField, 2> pointers{};
    FdField fd_in{};
    bool returns_fd = false;                 // the return value is a new fd
    std::uint32_t out_fd_offset = kNoField;  // a new fd is returned in this u32 field
};

// Largest buffer a pointer field may describe; the real kernel would EFAULT/E2BIG
// long before (TSM reports are a few KiB, IOVA range lists a few entries).
inline constexpr std::uint32_t kMaxPointerBuffer = 64U * 1024U;
// Largest struct size we accept through `size`; iommufd rejects non-zero trailing
// bytes with E2BIG, so a larger struct only ever carries zeros.
inline constexpr std::uint32_t kMaxStructSize = 4096U;

[[nodiscard]] const IoctlDesc* findIoctl(unsigned long request) noexcept;
[[nodiscard]] const IoctlDesc* findIoctl(std::string_view name) noexcept;
[[nodiscard]] std::span<const IoctlDesc> allIoctls() noexcept;

// The byte length of a pointer field's buffer, from the struct bytes.
[[nodiscard]] std::optional<std::uint32_t> pointerLength(const PointerField& p, std::span<const std::uint8_t> s);
[[nodiscard]] bool fdFieldPresent(const FdField& f, std::span<const std::uint8_t> s);

}  // namespace tio::kernel
