#pragma once
// The x86-64/arm64 generic ioctl number encoding (include/uapi/asm-generic/ioctl.h),
// as constexpr functions so the project never depends on the build host's headers.
#include <cstdint>

namespace tio::uapi {

inline constexpr std::uint32_t kIocNone = 0U;
inline constexpr std::uint32_t kIocWrite = 1U;
inline constexpr std::uint32_t kIocRead = 2U;

constexpr unsigned long ioc(std::uint32_t dir, std::uint32_t type, std::uint32_t nr, std::uint32_t size) {
    return (static_cast<unsigned long>(dir) << 30U) | (static_cast<unsigned long>(size) << 16U) |
           (static_cast<unsigned long>(type) << 8U) | static_cast<unsigned long>(nr);
}
constexpr unsigned long io(std::uint32_t type, std::uint32_t nr) { return ioc(kIocNone, type, nr, 0); }
template <typename T>
constexpr unsigned long iow(std::uint32_t type, std::uint32_t nr) {
    return ioc(kIocWrite, type, nr, sizeof(T));
}
template <typename T>
constexpr unsigned long iowr(std::uint32_t type, std::uint32_t nr) {
    return ioc(kIocWrite | kIocRead, type, nr, sizeof(T));
}
constexpr std::uint32_t iocDir(unsigned long req) { return static_cast<std::uint32_t>((req >> 30U) & 3U); }
constexpr std::uint32_t iocSize(unsigned long req) { return static_cast<std::uint32_t>((req >> 16U) & 0x3fffU); }

}  // namespace tio::uapi
