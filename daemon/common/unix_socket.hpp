#pragma once
// One message over an AF_UNIX socket with file descriptors (SCM_RIGHTS), both ways:
// the simulator's wire and the service-manager notifications in tests use it.
// Received fds are owned from the moment they arrive, whatever is wrong with the
// message.
#include <cstdint>
#include <expected>
#include <span>
#include <vector>

#include "common/unique_fd.hpp"

namespace tio::unixsock {

// The most fds one message may carry here (the kernel's SCM_MAX_FD is 253); a message
// with more is refused on receipt (EPROTO), its fds closed.
inline constexpr std::size_t kMaxFdsPerMessage = 8;

struct Message {
    std::vector<std::uint8_t> bytes;
    std::vector<UniqueFd> fds;
};

// One sendmsg of header+payload with `fds` (at most kMaxFdsPerMessage); errno on failure.
[[nodiscard]] std::expected<void, int> send(int sock, std::span<const std::uint8_t> header,
                                            std::span<const std::uint8_t> payload, std::span<const int> fds);
// One recvmsg of at most `max_bytes`; EPIPE on orderly EOF, EPROTO on truncation.
[[nodiscard]] std::expected<Message, int> receive(int sock, std::size_t max_bytes);

}  // namespace tio::unixsock
