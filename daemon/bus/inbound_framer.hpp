#pragma once
// Cuts what a peer-to-peer D-Bus client sends into the frames sd-bus may be given:
// the authentication lines up to and including BEGIN, then whole messages, each with
// exactly the fds its UNIX_FDS header field declares.
//
// Why it exists: sd-bus 252 drops a message whose fds do not match its UNIX_FDS
// header and forgets the fds without closing them (up to 253 a message, until the
// process exits), and it closes the connection when fds arrive in the same read as
// BEGIN, which a legal first call carrying an fd does (systemd PR #5520). Giving
// sd-bus only what this framer accepts closes both: a peer whose fds do not add up
// is a violation, and its connection is dropped with every fd it sent.
//
// Invariants: every fd received is owned here (or by a frame) until it is handed on
// or closed; at most kMaxPendingFds are held; at most kMaxMessageBytes of an
// unfinished message are buffered. A violation is final: feed() refuses from then on.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <expected>
#include <span>
#include <string>
#include <vector>

#include "common/unique_fd.hpp"
#include "common/unix_socket.hpp"

namespace tio::bus {

// The largest message a client may send: the longest legal call (ConvertMemoryRanges
// with 65,536 ranges) is about 2 MiB. sd-bus alone would buffer up to 128 MiB.
inline constexpr std::size_t kMaxMessageBytes = 8U << 20;
// The most fds one message may carry, and the most held for an unfinished one (no
// method takes more than one): what one read may bring (unixsock::kMaxFdsPerMessage).
inline constexpr std::size_t kMaxPendingFds = unixsock::kMaxFdsPerMessage;
// The longest authentication line (sd-bus refuses longer ones, too).
inline constexpr std::size_t kMaxAuthLine = 16U << 10;

struct Frame {
    enum class Kind : std::uint8_t { Auth, Message };
    Kind kind = Kind::Message;
    std::string bytes;
    std::vector<UniqueFd> fds;  // only ever on a Message
};

class InboundFramer {
public:
    // What one read returned: its bytes and the fds that came with them. Complete
    // frames queue up for next(); on a violation, a sentence saying what was wrong.
    [[nodiscard]] std::expected<void, std::string> feed(std::span<const char> bytes, std::vector<UniqueFd> fds);
    // The oldest complete frame, if any.
    [[nodiscard]] bool hasFrame() const { return !ready_.empty(); }
    [[nodiscard]] Frame next();
    [[nodiscard]] bool authenticating() const { return authenticating_; }
    // Bytes buffered for an unfinished frame (for quotas and tests).
    [[nodiscard]] std::size_t buffered() const { return partial_.size(); }

private:
    [[nodiscard]] std::expected<void, std::string> cut();
    [[nodiscard]] std::expected<bool, std::string> cutAuthLine();
    [[nodiscard]] std::expected<bool, std::string> cutMessage();
    [[nodiscard]] std::expected<void, std::string> violation(std::string why);

    bool authenticating_ = true;
    bool broken_ = false;
    std::string partial_;
    std::size_t head_ = 0;  // within a feed: where the next frame starts in partial_
    // Authenticating: partial_[0, searched_) holds no "\r\n" at or after head_, so a
    // line fed a byte at a time is searched once, not once per byte.
    std::size_t searched_ = 0;
    std::deque<UniqueFd> fds_;  // received, not yet claimed by a message
    std::deque<Frame> ready_;
};

}  // namespace tio::bus
