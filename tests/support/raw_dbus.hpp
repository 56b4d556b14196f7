#pragma once
// A D-Bus client that speaks the wire protocol itself, for what well-behaved
// libraries never send: fds that do not match UNIX_FDS, a call in the same write as
// BEGIN, thousands of calls without reading a reply. Only what the tests need:
// method calls with a ready-made body, and replies read far enough to match them.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/unique_fd.hpp"

namespace tio::test {

struct RawCall {
    std::uint32_t serial = 1;
    std::string path = "/org/tio/Guest1";
    std::string interface;
    std::string member;
    std::string signature;  // of `body`
    std::string body;       // marshalled little-endian, starting 8-aligned
    // The UNIX_FDS header field; absent when nullopt (whatever fds are sent).
    std::optional<std::uint32_t> unix_fds;
};

// The bytes of `call` as a little-endian D-Bus method call.
[[nodiscard]] std::string marshal(const RawCall& call);
// A string argument's bytes at a 4-aligned position ("s").
[[nodiscard]] std::string marshalString(std::string_view s);
// A GetAll("org.tio.Guest1") on the guest object.
[[nodiscard]] RawCall getAllGuest(std::uint32_t serial);

struct RawReply {
    std::uint8_t type = 0;  // 2 method return, 3 error, 4 signal
    std::uint32_t reply_serial = 0;
    std::string error_name;
};

class RawDbusClient {
public:
    // Connects to the socket at `path` (blocking), or leaves the client unconnected.
    explicit RawDbusClient(const std::string& path);
    [[nodiscard]] bool connected() const { return fd_.valid(); }
    [[nodiscard]] int fd() const { return fd_.get(); }

    // EXTERNAL for this process's uid, fd passing, BEGIN: the lines a client sends.
    [[nodiscard]] static std::string authLines();
    // Sends the auth lines alone and reads the server's OK and AGREE_UNIX_FD.
    [[nodiscard]] bool handshake();
    // One sendmsg of `bytes` with `fds` as SCM_RIGHTS; 0 or errno.
    int send(std::string_view bytes, std::span<const int> fds = {});
    // Reads the server's "OK ..." and "AGREE_UNIX_FD" lines after authLines() was sent
    // some other way (with a call in the same write, say).
    [[nodiscard]] bool readAuthReplies();
    // The next message, or nullopt on EOF, error or `timeout_ms` without one.
    [[nodiscard]] std::optional<RawReply> read(int timeout_ms = 5000);
    // The reply to `serial`, skipping signals; nullopt as read().
    [[nodiscard]] std::optional<RawReply> replyTo(std::uint32_t serial, int timeout_ms = 5000);
    // Whether the server closed the connection within `timeout_ms` (what it sent
    // before is read and discarded).
    [[nodiscard]] bool closedByServer(int timeout_ms = 5000);
    // Whether the server closed the connection, seen without reading anything.
    [[nodiscard]] bool hungUp(int timeout_ms);

private:
    [[nodiscard]] bool readExactly(char* out, std::size_t n, int timeout_ms);
    [[nodiscard]] bool readLine(std::string& line, int timeout_ms);

    UniqueFd fd_;
};

}  // namespace tio::test
