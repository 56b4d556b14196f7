#include "common/unix_socket.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace tio::unixsock {
namespace {

// A file description may be shared with another process that set O_NONBLOCK on it
// (fcntl acts on the description, not the fd); a syscall the socket stands for
// would ignore that, so an EAGAIN here waits for the socket instead of failing.
bool waitFor(int sock, short events) {
    pollfd p{.fd = sock, .events = events, .revents = 0};
    return ::poll(&p, 1, -1) >= 0 || errno == EINTR;
}

// Puts `fds` (at most kMaxFdsPerMessage) into `msg` as SCM_RIGHTS, in `control`.
void attachRights(msghdr& msg, char* control, std::span<const int> fds) {
    if (fds.empty()) return;
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
}

// Takes ownership of every fd in `msg`'s control data, and the sender's pid if it
// came with SCM_CREDENTIALS.
void takeControl(msghdr& msg, std::vector<UniqueFd>& fds, pid_t* sender_pid) {
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET) continue;
        if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len >= CMSG_LEN(sizeof(ucred)) && sender_pid != nullptr) {
            ucred cred{};
            std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
            *sender_pid = cred.pid;
            continue;
        }
        if (c->cmsg_type != SCM_RIGHTS) continue;
        const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
            int fd = -1;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            fds.emplace_back(fd);
        }
    }
}

}  // namespace

std::expected<void, int> send(int sock, std::span<const std::uint8_t> header, std::span<const std::uint8_t> payload,
                              std::span<const int> fds) {
    if (fds.size() > kMaxFdsPerMessage) return std::unexpected(E2BIG);
    iovec iov[2] = {{const_cast<std::uint8_t*>(header.data()), header.size()},
                    {const_cast<std::uint8_t*>(payload.data()), payload.size()}};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)] = {};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = payload.empty() ? 1 : 2;
    attachRights(msg, control, fds);
    for (;;) {
        const ssize_t n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
        if (n >= 0) return {};
        if (errno == EAGAIN && waitFor(sock, POLLOUT)) continue;
        if (errno != EINTR) return std::unexpected(errno);
    }
}

std::expected<Message, int> receive(int sock, std::size_t max_bytes) {
    Message m;
    // Read into a buffer kept per thread, then copy what came: a fresh max_bytes
    // vector would be zeroed on every call (160 KiB for the simulator's wire: a
    // quarter of a conversion_bench run's CPU was that memset).
    thread_local std::vector<std::uint8_t> scratch;
    if (scratch.size() < max_bytes) scratch.resize(max_bytes);
    iovec iov{scratch.data(), max_bytes};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage) + CMSG_SPACE(sizeof(ucred))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = 0;
    for (;;) {
        n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
        if (n >= 0) break;
        if (errno == EAGAIN && waitFor(sock, POLLIN)) continue;
        if (errno != EINTR) return std::unexpected(errno);
    }
    // Take ownership of every received fd before any check can return early.
    takeControl(msg, m.fds, &m.sender_pid);
    if (n == 0) return std::unexpected(EPIPE);
    if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) return std::unexpected(EPROTO);
    m.bytes.assign(scratch.data(), scratch.data() + n);
    return m;
}

std::expected<std::size_t, int> receiveSome(int sock, std::span<char> buffer, std::vector<UniqueFd>& fds) {
    iovec iov{buffer.data(), buffer.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = -1;
    do {
        n = ::recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return std::unexpected(errno);
    takeControl(msg, fds, nullptr);
    // The kernel closed what did not fit; the stream can no longer be trusted.
    if ((msg.msg_flags & MSG_CTRUNC) != 0) return std::unexpected(EPROTO);
    return static_cast<std::size_t>(n);
}

std::expected<std::size_t, int> sendSome(int sock, std::span<const char> bytes, std::span<const int> fds) {
    if (fds.size() > kMaxFdsPerMessage) return std::unexpected(E2BIG);
    iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    attachRights(msg, control, fds);
    ssize_t n = -1;
    do {
        n = ::sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return std::unexpected(errno);
    return static_cast<std::size_t>(n);
}

std::expected<void, int> passCredentials(int sock) {
    const int on = 1;
    if (::setsockopt(sock, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) < 0) return std::unexpected(errno);
    return {};
}

}  // namespace tio::unixsock
