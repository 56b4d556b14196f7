#include "kernel/sim/sim_syscalls.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include "kernel/ioctl_table.hpp"
#include "kernel/uapi/ioctl_encoding.hpp"

namespace tio::kernel {
namespace {

std::span<const std::uint8_t> asBytes(const std::string& s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

template <typename T>
T readAt(std::span<const std::uint8_t> s, std::uint32_t off) {
    T v{};
    std::memcpy(&v, s.data() + off, sizeof v);
    return v;
}

}  // namespace

SysResult<std::unique_ptr<SimSyscalls>> SimSyscalls::connect(const std::string& socket_path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socket_path.size() >= sizeof addr.sun_path) return std::unexpected(ENAMETOOLONG);
    std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
    UniqueFd sock(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (!sock) return std::unexpected(errno);
    if (::connect(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) < 0) return std::unexpected(errno);
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(sock.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return std::unexpected(errno);
    return std::unique_ptr<SimSyscalls>(new SimSyscalls(std::move(sock), cred.pid));
}

bool SimSyscalls::isSimFile(int fd) const {
    struct stat st {};
    if (::fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) return false;
    int type = 0;
    socklen_t tlen = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 || type != SOCK_SEQPACKET) return false;
    ucred cred{};
    socklen_t clen = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) return false;
    return cred.pid == sim_pid_;
}

SysResult<wire::Message> SimSyscalls::call(int sock, const wire::Request& request,
                                           std::span<const std::uint8_t> payload, std::span<const int> fds) {
    if (hung_) {
        pollfd p{.fd = hung_.get(), .events = POLLIN, .revents = 0};
        if (::poll(&p, 1, 0) == 0) return std::unexpected(ETIMEDOUT);     // still busy with it
        if ((p.revents & POLLIN) != 0) (void)wire::receive(hung_.get());  // the late answer: dropped
        hung_.reset();
    }
    wire::Request req = request;
    req.seq = ++seq_;
    if (auto sent = wire::send(sock, wire::bytesOf(req), payload, fds); !sent) return std::unexpected(sent.error());
    const auto deadline = std::chrono::steady_clock::now() + call_timeout_;
    for (;;) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd p{.fd = sock, .events = POLLIN, .revents = 0};
        const int ready = left.count() > 0 ? ::poll(&p, 1, static_cast<int>(left.count())) : 0;
        if (ready < 0 && errno == EINTR) continue;
        if (ready < 0) return std::unexpected(errno);
        if (ready == 0) {
            if (auto watch = UniqueFd::duplicateOf(sock)) hung_ = std::move(*watch);
            return std::unexpected(ETIMEDOUT);
        }
        auto reply = wire::receive(sock);
        if (!reply) return std::unexpected(reply.error() == EPIPE ? EIO : reply.error());
        if (reply->bytes.size() < sizeof(wire::Reply)) return std::unexpected(EPROTO);
        // A reply to someone else's request (a previous owner of this file that died
        // before reading it) is dropped, with any fds it carried.
        if (readAt<wire::Reply>(reply->bytes, 0).seq == req.seq) return reply;
    }
}

SysResult<UniqueFd> SimSyscalls::open(const std::string& path, int flags) {
    wire::Request req{.op = wire::Op::Open, .a = static_cast<std::uint64_t>(flags)};
    auto m = call(broker_.get(), req, asBytes(path), {});
    if (!m) return std::unexpected(m.error());
    const auto rep = readAt<wire::Reply>(m->bytes, 0);
    if (rep.err != 0) return std::unexpected(rep.err);
    if (m->fds.size() != 1) return std::unexpected(EPROTO);
    return std::move(m->fds.front());
}

SysResult<long> SimSyscalls::ioctl(int fd, unsigned long request, unsigned long arg) {
    if (!isSimFile(fd)) return host_.ioctl(fd, request, arg);
    return simIoctl(fd, request, arg);
}

SysResult<long> SimSyscalls::simIoctl(int fd, unsigned long request, unsigned long arg) {
    const IoctlDesc* desc = findIoctl(request);
    if (desc == nullptr) return std::unexpected(ENOTTY);

    wire::Request req{.op = wire::Op::Ioctl, .request = request, .a = arg};
    std::vector<std::uint8_t> payload;
    std::vector<int> fds;
    std::span<std::uint8_t> user_struct;
    if (desc->kind == ArgKind::Struct) {
        if (arg == 0) return std::unexpected(EFAULT);
        auto* p = reinterpret_cast<std::uint8_t*>(arg);
        std::uint32_t size = uapi::iocSize(request);
        if (desc->size_in_struct) std::memcpy(&size, p, sizeof size);
        if (size < 4U || size > kMaxStructSize) return std::unexpected(size < 4U ? EINVAL : E2BIG);
        user_struct = {p, size};
        req.a = 0;
        payload.assign(user_struct.begin(), user_struct.end());
        if (fdFieldPresent(desc->fd_in, user_struct))
            fds.push_back(readAt<std::int32_t>(user_struct, desc->fd_in.offset));
        for (const auto& ptr : desc->pointers) {
            if (ptr.ptr_offset == kNoField || ptr.ptr_offset + 8U > size) continue;
            const auto len = pointerLength(ptr, user_struct);
            if (!len) return std::unexpected(E2BIG);
            const auto uptr = readAt<std::uint64_t>(user_struct, ptr.ptr_offset);
            if (*len != 0 && uptr == 0) return std::unexpected(EFAULT);
            if (ptr.dir == Direction::Out || *len == 0) continue;
            const auto* src = reinterpret_cast<const std::uint8_t*>(uptr);
            if (ptr.holds_fd) fds.push_back(readAt<std::int32_t>({src, 4}, 0));
            payload.insert(payload.end(), src, src + *len);
        }
    }
    // A negative or closed fd inside a struct is the caller's bug; the kernel answers EBADF.
    for (int f : fds)
        if (f < 0 || ::fcntl(f, F_GETFD) < 0) return std::unexpected(EBADF);

    // Where the answer's buffers go is the caller's word, taken now: nothing in the
    // reply may redirect or lengthen a copy into the caller's memory.
    std::vector<OutBuffer> outs;
    if (!user_struct.empty()) {
        for (const auto& ptr : desc->pointers) {
            if (ptr.ptr_offset == kNoField || ptr.dir == Direction::In || ptr.ptr_offset + 8U > user_struct.size()) {
                continue;
            }
            const auto len = pointerLength(ptr, user_struct);
            if (!len) return std::unexpected(E2BIG);
            outs.push_back({reinterpret_cast<std::uint8_t*>(readAt<std::uint64_t>(user_struct, ptr.ptr_offset)), *len});
        }
    }
    auto m = call(fd, req, payload, fds);
    if (!m) return std::unexpected(m.error());
    return applyIoctlReply(*desc, user_struct, outs, *m);
}

SysResult<long> applyIoctlReply(const IoctlDesc& desc, std::span<std::uint8_t> user_struct,
                                std::span<const OutBuffer> outs, wire::Message& reply) {
    wire::Message& m = reply;
    if (m.bytes.size() < sizeof(wire::Reply)) return std::unexpected(EPROTO);
    const auto rep = readAt<wire::Reply>(m.bytes, 0);
    std::span<const std::uint8_t> out(m.bytes.data() + sizeof(wire::Reply), m.bytes.size() - sizeof(wire::Reply));

    // Output is copied back even on error: some ioctls report through the struct when
    // they fail (IOMMU_IOAS_IOVA_RANGES sets num_iovas with EMSGSIZE). The simulator
    // answers each out-buffer with as many bytes as the caller's buffer holds.
    if (!user_struct.empty() && out.size() >= user_struct.size()) {
        std::memcpy(user_struct.data(), out.data(), user_struct.size());
        out = out.subspan(user_struct.size());
        for (const OutBuffer& b : outs) {
            if (b.len > out.size()) return std::unexpected(EPROTO);
            if (b.len != 0) std::memcpy(b.dst, out.data(), b.len);
            out = out.subspan(b.len);
        }
    }
    if (rep.err != 0) return std::unexpected(rep.err);
    if (m.fds.size() > 1) return std::unexpected(EPROTO);
    if (desc.returns_fd) {
        if (m.fds.size() != 1) return std::unexpected(EPROTO);
        return static_cast<long>(m.fds.front().release());
    }
    // An fd returned in a struct field may legitimately be absent (KVM_CREATE_DEVICE
    // with KVM_CREATE_DEVICE_TEST creates nothing and leaves the field alone).
    if (desc.out_fd_offset != kNoField && m.fds.size() == 1) {
        if (desc.out_fd_offset + 4U > user_struct.size()) return std::unexpected(EPROTO);
        const auto v = static_cast<std::uint32_t>(m.fds.front().release());
        std::memcpy(user_struct.data() + desc.out_fd_offset, &v, sizeof v);
    }
    return static_cast<long>(rep.ret);
}

SysResult<> SimSyscalls::fallocate(int fd, int mode, std::uint64_t offset, std::uint64_t length) {
    if (!isSimFile(fd)) return host_.fallocate(fd, mode, offset, length);
    wire::Request req{.op = wire::Op::Fallocate, .a = static_cast<std::uint64_t>(mode), .b = offset, .c = length};
    auto m = call(fd, req, {}, {});
    if (!m) return std::unexpected(m.error());
    const auto rep = readAt<wire::Reply>(m->bytes, 0);
    if (rep.err != 0) return std::unexpected(rep.err);
    return {};
}

SysResult<std::string> SimSyscalls::readAttribute(const std::string& path) {
    return readText(wire::Op::ReadAttr, path);
}
SysResult<std::string> SimSyscalls::readLink(const std::string& path) { return readText(wire::Op::ReadLink, path); }

SysResult<std::string> SimSyscalls::readText(wire::Op op, const std::string& path) {
    auto m = call(broker_.get(), {.op = op}, asBytes(path), {});
    if (!m) return std::unexpected(m.error());
    const auto rep = readAt<wire::Reply>(m->bytes, 0);
    if (rep.err != 0) return std::unexpected(rep.err);
    return std::string(m->bytes.begin() + sizeof(wire::Reply), m->bytes.end());
}

SysResult<> SimSyscalls::writeAttribute(const std::string& path, const std::string& value) {
    std::string payload = path;
    payload.push_back('\0');
    payload += value;
    auto m = call(broker_.get(), {.op = wire::Op::WriteAttr}, asBytes(payload), {});
    if (!m) return std::unexpected(m.error());
    const auto rep = readAt<wire::Reply>(m->bytes, 0);
    if (rep.err != 0) return std::unexpected(rep.err);
    return {};
}

SysResult<std::vector<std::string>> SimSyscalls::listDirectory(const std::string& path) {
    auto m = call(broker_.get(), {.op = wire::Op::ListDir}, asBytes(path), {});
    if (!m) return std::unexpected(m.error());
    const auto rep = readAt<wire::Reply>(m->bytes, 0);
    if (rep.err != 0) return std::unexpected(rep.err);
    std::vector<std::string> names;
    std::string cur;
    for (auto it = m->bytes.begin() + sizeof(wire::Reply); it != m->bytes.end(); ++it) {
        if (*it == 0) {
            names.push_back(std::move(cur));
            cur.clear();
        } else {
            cur.push_back(static_cast<char>(*it));
        }
    }
    return names;
}

SysResult<SharedMapping> SimSyscalls::mapShared(int fd, std::uint64_t offset, std::uint64_t length) {
    if (!isSimFile(fd)) return host_.mapShared(fd, offset, length);
    auto m = call(fd, {.op = wire::Op::MapPages}, {}, {});
    if (!m) return std::unexpected(m.error());
    const auto rep = readAt<wire::Reply>(m->bytes, 0);
    if (rep.err != 0) return std::unexpected(rep.err);
    if (m->fds.size() != 1) return std::unexpected(EPROTO);
    return host_.mapShared(m->fds.front().get(), offset, length);  // the memfd closes; the mapping stays
}

SysResult<FdIdentity> SimSyscalls::identify(int fd) {
    if (!isSimFile(fd)) return host_.identify(fd);
    struct stat st {};
    if (::fstat(fd, &st) < 0) return std::unexpected(errno);
    auto m = call(fd, {.op = wire::Op::Identify}, {}, {});
    if (!m) return std::unexpected(m.error());
    const auto rep = readAt<wire::Reply>(m->bytes, 0);
    if (rep.err != 0) return std::unexpected(rep.err);
    FdIdentity id;
    id.link.assign(m->bytes.begin() + sizeof(wire::Reply), m->bytes.end());
    id.dev = st.st_dev;
    id.ino = st.st_ino;
    id.rdev = static_cast<dev_t>(rep.a);
    id.size = rep.ret > 0 ? static_cast<std::uint64_t>(rep.ret) : 0;
    return id;
}

}  // namespace tio::kernel
