#pragma once
// The names fds are kept under in systemd's fd store (FDNAME=), besides the guest's
// own objects (core::Guest::ownedFds): the guest socket the units pass in, the
// memory journal, and the snapshots.
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tio::persist {

// The guest socket: FileDescriptorName= of tio-manager@.socket, or what an unnamed
// listening fd is called (systemd-socket-activate passes it so).
inline constexpr std::string_view kListenName = "vmm";
inline constexpr std::string_view kUnnamed = "unknown";
inline constexpr std::string_view kJournalName = "journal";
// "snapshot.N": the newest N is the one to restore from.
inline constexpr std::string_view kSnapshotPrefix = "snapshot.";

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
