#include "support/raw_dbus.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <vector>

#include "common/unix_socket.hpp"

namespace tio::test {
namespace {

void pad(std::string& s, std::size_t align) {
    while (s.size() % align != 0) s.push_back('\0');
}

void putU32(std::string& s, std::uint32_t v) { s.append(reinterpret_cast<const char*>(&v), sizeof v); }

std::uint32_t getU32(const std::string& s, std::size_t at) {
    std::uint32_t v = 0;
    std::memcpy(&v, s.data() + at, sizeof v);
    return v;
}

// One header field (code, variant of a one-char type) at its 8-aligned place.
void field(std::string& fields, std::uint8_t code, char type, std::string_view value) {
    pad(fields, 8);
    fields.push_back(static_cast<char>(code));
    fields.push_back(1);
    fields.push_back(type);
    fields.push_back('\0');
    if (type == 'g') {
        fields.push_back(static_cast<char>(value.size()));
    } else {
        putU32(fields, static_cast<std::uint32_t>(value.size()));
    }
    fields.append(value);
    fields.push_back('\0');
}

}  // namespace

std::string marshalString(std::string_view s) {
    std::string out;
    putU32(out, static_cast<std::uint32_t>(s.size()));
    out.append(s);
    out.push_back('\0');
    return out;
}

std::string marshal(const RawCall& call) {
    std::string fields;
    field(fields, 1, 'o', call.path);
    if (!call.interface.empty()) field(fields, 2, 's', call.interface);
    field(fields, 3, 's', call.member);
    if (!call.signature.empty()) field(fields, 8, 'g', call.signature);
    if (call.unix_fds) {
        pad(fields, 8);
        fields.append({9, 1, 'u', '\0'});
        putU32(fields, *call.unix_fds);
    }
    std::string m = {'l', 1, 0, 1};  // little-endian method call, flags 0, version 1
    putU32(m, static_cast<std::uint32_t>(call.body.size()));
    putU32(m, call.serial);
    putU32(m, static_cast<std::uint32_t>(fields.size()));
    m += fields;
    pad(m, 8);
    return m + call.body;
}

RawCall getAllGuest(std::uint32_t serial) {
    return RawCall{.serial = serial,
                   .interface = "org.freedesktop.DBus.Properties",
                   .member = "GetAll",
                   .signature = "s",
                   .body = marshalString("org.tio.Guest1")};
}

RawDbusClient::RawDbusClient(const std::string& path) {
    UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (s && ::connect(s.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) fd_ = std::move(s);
}

std::string RawDbusClient::authLines() {
    std::string uid_hex;
    for (char c : std::to_string(::geteuid())) {
        static constexpr char kHex[] = "0123456789abcdef";
        uid_hex += kHex[static_cast<unsigned char>(c) >> 4];
        uid_hex += kHex[static_cast<unsigned char>(c) & 0xf];
    }
    return std::string(1, '\0') + "AUTH EXTERNAL " + uid_hex + "\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n";
}

bool RawDbusClient::handshake() { return send(authLines()) == 0 && readAuthReplies(); }

int RawDbusClient::send(std::string_view bytes, std::span<const int> fds) {
    if (fds.size() > unixsock::kMaxFdsPerMessage) {
        // More than the project's helper carries: build this one by hand.
        iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
        std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.data();
        msg.msg_controllen = control.size();
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
        return ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()) ? 0 : errno;
    }
    std::span<const char> rest(bytes);
    while (!rest.empty()) {
        auto sent = unixsock::sendSome(fd_.get(), rest, fds);
        if (!sent && sent.error() == EAGAIN) {
            pollfd p{fd_.get(), POLLOUT, 0};
            if (::poll(&p, 1, 5000) <= 0) return ETIMEDOUT;
            continue;
        }
        if (!sent) return sent.error();
        rest = rest.subspan(*sent);
        fds = {};
    }
    return 0;
}

bool RawDbusClient::readExactly(char* out, std::size_t n, int timeout_ms) {
    while (n > 0) {
        pollfd p{fd_.get(), POLLIN, 0};
        if (::poll(&p, 1, timeout_ms) <= 0) return false;
        const ssize_t k = ::recv(fd_.get(), out, n, MSG_DONTWAIT);
        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) return false;
        if (k > 0) {
            out += k;
            n -= static_cast<std::size_t>(k);
        }
    }
    return true;
}

bool RawDbusClient::readLine(std::string& line, int timeout_ms) {
    line.clear();
    char c = 0;
    while (readExactly(&c, 1, timeout_ms)) {
        line.push_back(c);
        if (line.ends_with("\r\n")) return true;
    }
    return false;
}

bool RawDbusClient::readAuthReplies() {
    std::string ok;
    std::string agree;
    return readLine(ok, 5000) && ok.starts_with("OK ") && readLine(agree, 5000) && agree == "AGREE_UNIX_FD\r\n";
}

std::optional<RawReply> RawDbusClient::read(int timeout_ms) {
    std::string m(16, '\0');
    if (!readExactly(m.data(), 16, timeout_ms) || m[0] != 'l') return std::nullopt;
    const std::uint32_t body = getU32(m, 4);
    const std::uint32_t fields = getU32(m, 12);
    const std::size_t total = ((16 + fields + 7) & ~std::size_t{7}) + body;
    m.resize(total);
    if (!readExactly(m.data() + 16, total - 16, timeout_ms)) return std::nullopt;
    RawReply r;
    r.type = static_cast<std::uint8_t>(m[1]);
    // Walk the header fields for REPLY_SERIAL (5, u) and ERROR_NAME (4, s).
    for (std::size_t pos = 16; (pos = (pos + 7) & ~std::size_t{7}) < 16 + fields;) {
        const auto code = static_cast<std::uint8_t>(m[pos]);
        const char type = m[pos + 2];
        pos += 4;
        if (type == 'g') {
            pos += 1 + static_cast<std::uint8_t>(m[pos]) + 1;
            continue;
        }
        pos = (pos + 3) & ~std::size_t{3};
        const std::uint32_t v = getU32(m, pos);
        if (type == 'u') {
            if (code == 5) r.reply_serial = v;
            pos += 4;
        } else {  // s or o
            if (code == 4) r.error_name = m.substr(pos + 4, v);
            pos += 4 + v + 1;
        }
    }
    return r;
}

std::optional<RawReply> RawDbusClient::replyTo(std::uint32_t serial, int timeout_ms) {
    for (;;) {
        auto r = read(timeout_ms);
        if (!r || ((r->type == 2 || r->type == 3) && r->reply_serial == serial)) return r;
    }
}

bool RawDbusClient::closedByServer(int timeout_ms) {
    char buf[4096];
    for (;;) {
        pollfd p{fd_.get(), POLLIN, 0};
        if (::poll(&p, 1, timeout_ms) <= 0) return false;
        const ssize_t k = ::recv(fd_.get(), buf, sizeof buf, MSG_DONTWAIT);
        if (k == 0 || (k < 0 && errno == ECONNRESET)) return true;
        if (k < 0 && errno != EAGAIN && errno != EINTR) return false;
    }
}

bool RawDbusClient::hungUp(int timeout_ms) {
    pollfd p{fd_.get(), POLLRDHUP, 0};
    return ::poll(&p, 1, timeout_ms) > 0 && (p.revents & (POLLRDHUP | POLLHUP)) != 0;
}

}  // namespace tio::test
