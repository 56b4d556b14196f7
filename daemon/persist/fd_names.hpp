#pragma once
// The names fds are kept under in systemd's fd store (FDNAME=): the guest socket the
// units pass in, the memory journal, the snapshots, and every fd the guest owns
// (one name per open file: a service manager keeps a file only once).
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/guest.hpp"

namespace tio::persist {

// The guest socket: FileDescriptorName= of tio-manager@.socket, or what an unnamed
// listening fd is called (systemd-socket-activate passes it so).
inline constexpr std::string_view kListenName = "vmm";
inline constexpr std::string_view kUnnamed = "unknown";
inline constexpr std::string_view kJournalName = "journal";
// "snapshot.N": the newest N is the one to restore from.
inline constexpr std::string_view kSnapshotPrefix = "snapshot.";

// The guest's own fds: "vm", "iommufd", "dev-N", "claim-N", "mem-N", "shm-N".
inline constexpr std::string_view kVmFd = "vm";
inline constexpr std::string_view kIommufdFd = "iommufd";
inline constexpr std::string_view kDeviceFd = "dev";
inline constexpr std::string_view kClaimFd = "claim";
inline constexpr std::string_view kMemoryFd = "mem";
inline constexpr std::string_view kSharedFd = "shm";

// An fd the guest owns, under the name it is kept by.
struct NamedFd {
    std::string name;
    int fd = -1;
};

[[nodiscard]] std::string objectFdName(std::string_view kind, core::ObjectId id);
// The name region `id`'s guest_memfd is kept under: "mem-<the lowest id of a region
// on the same file>".
[[nodiscard]] std::string memoryFdName(const core::Guest& guest, core::ObjectId id);
// Likewise for its shared memfd ("shm-..."); empty when the region has none.
[[nodiscard]] std::string sharedFdName(const core::Guest& guest, core::ObjectId id);
// Every fd the guest owns, named; one name per open file.
[[nodiscard]] std::vector<NamedFd> ownedFds(const core::Guest& guest);

[[nodiscard]] inline std::string snapshotName(std::uint64_t generation) {
    return std::string(kSnapshotPrefix) + std::to_string(generation);
}
// N for "snapshot.N", nullopt for any other name.
[[nodiscard]] inline std::optional<std::uint64_t> snapshotGeneration(std::string_view name) {
    if (!name.starts_with(kSnapshotPrefix)) return std::nullopt;
    const std::string_view digits = name.substr(kSnapshotPrefix.size());
    std::uint64_t g = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), g);
    if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty()) return std::nullopt;
    return g;
}

}  // namespace tio::persist
