#pragma once
// One message over an AF_UNIX socket with file descriptors (SCM_RIGHTS), both ways:
// the simulator's wire and the service-manager notifications in tests use it.
// Received fds are owned from the moment they arrive, whatever is wrong with the
// message.
#include <sys/types.h>

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
    // The sending process as the kernel saw it (SCM_CREDENTIALS), when the receiving
    // socket has SO_PASSCRED set; 0 otherwise. The sender cannot choose it (without
    // CAP_SYS_ADMIN, which none of our senders claims: they never send credentials).
    pid_t sender_pid = 0;
};

// One sendmsg of header+payload with `fds` (at most kMaxFdsPerMessage); errno on failure.
[[nodiscard]] std::expected<void, int> send(int sock, std::span<const std::uint8_t> header,
                                            std::span<const std::uint8_t> payload, std::span<const int> fds);
// One recvmsg of at most `max_bytes`; EPIPE on orderly EOF, EPROTO on truncation.
// With SO_PASSCRED on `sock` the message carries its sender's pid.
[[nodiscard]] std::expected<Message, int> receive(int sock, std::size_t max_bytes);
// Without waiting: one recvmsg into `buffer`, the fds that came appended to `fds`
// (owned, close-on-exec). The byte count, 0 at EOF; EAGAIN when nothing is there;
// EPROTO when more than kMaxFdsPerMessage fds came (the kernel closed the rest).
[[nodiscard]] std::expected<std::size_t, int> receiveSome(int sock, std::span<char> buffer, std::vector<UniqueFd>& fds);
// Without waiting: one sendmsg of `bytes` with `fds`; how many bytes went (the fds go
// with the first of them), or errno (EAGAIN when the socket is full).
[[nodiscard]] std::expected<std::size_t, int> sendSome(int sock, std::span<const char> bytes, std::span<const int> fds);
// Asks the kernel to attach the sender's credentials to every message `sock` receives
// from now on (and, on a listening socket, on every socket it accepts).
[[nodiscard]] std::expected<void, int> passCredentials(int sock);

}  // namespace tio::unixsock
