#pragma once
// The transport between SimSyscalls (in the daemon) and tio-simkernel.
//
// Each simulated open file description is one end of an AF_UNIX SOCK_SEQPACKET
// socketpair created by the simulator: the daemon holds a real fd, so dup, fd
// passing over D-Bus, the fd store and close-on-crash behave as they do for kernel
// files, and when the last copy closes the simulator sees EOF and releases the file
// the way iommufd_fops_release would. One message = one syscall: a WireRequest
// header followed by the payload; the reply is a WireReply plus payload. File
// descriptors carried inside ioctl structs travel as SCM_RIGHTS.
#include <cerrno>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/unique_fd.hpp"
#include "common/unix_socket.hpp"
#include "kernel/syscalls.hpp"

namespace tio::kernel::wire {

inline constexpr std::uint32_t kMagic = 0x54494f31;  // "TIO1"
// Big enough for a struct (<= kMaxStructSize) plus two pointer buffers (<= 64 KiB each).
inline constexpr std::size_t kMaxMessage = std::size_t{160} * 1024U;
// SCM_MAX_FD is 253; no syscall we forward carries more than two.
inline constexpr std::size_t kMaxFds = 4;

enum class Op : std::uint32_t {
    Open = 1,       // payload: path; a = flags            -> new fd
    Ioctl = 2,      // request, a = value; payload: struct + in-buffers -> out struct + out-buffers
    Fallocate = 3,  // a = mode, b = offset, c = length
    ReadAttr = 4,   // payload: path                        -> payload: value
    WriteAttr = 5,  // payload: path '\0' value
    ListDir = 6,    // payload: path                        -> payload: names, '\0'-separated
    Identify = 7,   // on a file's own socket               -> payload: link; a = rdev; ret = size
    MapPages = 8,   // on a file's own socket               -> fd: what the caller mmaps (a guest_memfd's pages)
    ReadLink = 9,   // payload: path of a sysfs symlink     -> payload: its target
};

// `seq` pairs a reply with its request: a file kept across a daemon restart (the fd
// store) may still hold the reply to a request its killed sender never read, and a
// real syscall leaves nothing like that behind.
struct Request {
    std::uint32_t magic = kMagic;
    Op op = Op::Open;
    std::uint64_t seq = 0;
    std::uint64_t request = 0;
    std::uint64_t a = 0;
    std::uint64_t b = 0;
    std::uint64_t c = 0;
};

struct Reply {
    std::uint32_t magic = kMagic;
    std::int32_t err = 0;  // errno, 0 on success
    std::int64_t ret = 0;
    std::uint64_t a = 0;
    std::uint64_t seq = 0;  // the request's
};

using Message = unixsock::Message;  // header + payload, and the fds

// One request or reply: within the wire's bounds (E2BIG otherwise), then one sendmsg.
[[nodiscard]] inline SysResult<> send(int sock, std::span<const std::uint8_t> header,
                                      std::span<const std::uint8_t> payload, std::span<const int> fds) {
    if (fds.size() > kMaxFds || header.size() + payload.size() > kMaxMessage) return std::unexpected(E2BIG);
    return unixsock::send(sock, header, payload, fds);
}
// One recvmsg; EPIPE on orderly EOF, EPROTO on truncation.
[[nodiscard]] inline SysResult<Message> receive(int sock) { return unixsock::receive(sock, kMaxMessage); }

template <typename H>
[[nodiscard]] std::span<const std::uint8_t> bytesOf(const H& h) {
    return {reinterpret_cast<const std::uint8_t*>(&h), sizeof h};
}

}  // namespace tio::kernel::wire
