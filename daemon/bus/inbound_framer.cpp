#include "bus/inbound_framer.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <optional>
#include <string_view>

namespace tio::bus {
namespace {

// The fixed part of a D-Bus message header: endianness, type, flags, version, body
// length, serial, and the length of the header-field array that follows it.
constexpr std::size_t kFixedHeader = 16;
constexpr std::uint8_t kProtocolVersion = 1;
constexpr std::uint8_t kFieldUnixFds = 9;

constexpr std::size_t alignUp(std::size_t n, std::size_t a) { return (n + a - 1) & ~(a - 1); }

std::uint32_t readU32(std::string_view b, std::size_t at, bool little) {
    std::uint32_t v = 0;
    std::memcpy(&v, b.data() + at, sizeof v);
    return little == (std::endian::native == std::endian::little) ? v : std::byteswap(v);
}

struct BasicType {
    std::size_t align;
    std::size_t size;  // 0: a string, whose length comes first
};

// The basic types a header field's variant may hold. The spec's fields use s, o, g
// and u; other basic types are skipped as unknown fields are. Containers in a header
// field are refused: no client library sends one.
std::optional<BasicType> basicType(char c) {
    switch (c) {
        case 'y': return BasicType{1, 1};
        case 'n':
        case 'q': return BasicType{2, 2};
        case 'b':
        case 'i':
        case 'u':
        case 'h': return BasicType{4, 4};
        case 'x':
        case 't':
        case 'd': return BasicType{8, 8};
        case 's':
        case 'o': return BasicType{4, 0};
        case 'g': return BasicType{1, 0};
        default: return std::nullopt;
    }
}

// The UNIX_FDS field of the message `msg`, whose header fields end at `fields_end`
// (0 when absent), or what is wrong with the header.
std::expected<std::uint32_t, std::string> declaredFds(std::string_view msg, bool little, std::size_t fields_end) {
    std::uint32_t fds = 0;
    std::size_t pos = kFixedHeader;
    while ((pos = alignUp(pos, 8)) < fields_end) {
        // code (y), then the variant's signature: length byte, one type char, NUL.
        if (fields_end - pos < 4) return std::unexpected("a header field is cut short");
        const auto code = static_cast<std::uint8_t>(msg[pos]);
        const char type = msg[pos + 2];
        const auto basic = basicType(type);
        if (msg[pos + 1] != 1 || msg[pos + 3] != '\0' || !basic) {
            return std::unexpected("a header field that is not of one basic type");
        }
        pos = alignUp(pos + 4, basic->align);
        std::size_t size = basic->size;
        if (size == 0 && pos < fields_end) {
            size = type == 'g' ? 1 + static_cast<std::uint8_t>(msg[pos]) + 1
                               : (fields_end - pos < 4 ? fields_end : 4 + std::size_t{readU32(msg, pos, little)} + 1);
        }
        if (pos >= fields_end || fields_end - pos < size) return std::unexpected("a header field runs past the header");
        if (code == kFieldUnixFds) {
            if (type != 'u') return std::unexpected("UNIX_FDS is not a uint32");
            fds = readU32(msg, pos, little);
        }
        pos += size;
    }
    return fds;
}

}  // namespace

std::expected<void, std::string> InboundFramer::violation(std::string why) {
    broken_ = true;
    fds_.clear();
    ready_.clear();  // nothing of a peer that broke the protocol is served
    partial_.clear();
    head_ = 0;
    searched_ = 0;
    return std::unexpected(std::move(why));
}

std::expected<void, std::string> InboundFramer::feed(std::span<const char> bytes, std::vector<UniqueFd> fds) {
    if (broken_) return std::unexpected("the connection broke the protocol before");
    for (auto& fd : fds) fds_.push_back(std::move(fd));
    if (fds_.size() > kMaxPendingFds) return violation("more file descriptors pending than one message may carry");
    partial_.append(bytes.data(), bytes.size());
    auto r = cut();
    partial_.erase(0, head_);  // once per read: cutting many small messages stays linear
    searched_ -= std::min(searched_, head_);
    head_ = 0;
    if (!r) return violation(std::move(r.error()));
    // Fds are received with the first bytes of the message that carries them (a read
    // ends with the write that sent them), so once every message is whole none may be
    // left over, and none may come while the lines before BEGIN are still arriving.
    if (authenticating_ && !fds_.empty()) return violation("file descriptors sent during authentication");
    if (partial_.empty() && !fds_.empty()) return violation("file descriptors no message declares");
    return {};
}

std::expected<void, std::string> InboundFramer::cut() {
    for (;;) {
        auto cut = authenticating_ ? cutAuthLine() : cutMessage();
        if (!cut) return std::unexpected(std::move(cut.error()));
        if (!*cut) return {};
    }
}

std::expected<bool, std::string> InboundFramer::cutAuthLine() {
    // A "\r" that ended the bytes searched may pair with a "\n" that came since.
    const std::size_t end = partial_.find("\r\n", std::max(head_, searched_ == 0 ? 0 : searched_ - 1));
    if (end == std::string::npos) {
        if (partial_.size() - head_ > kMaxAuthLine) return std::unexpected("an authentication line longer than 16 KiB");
        searched_ = partial_.size();
        return false;
    }
    const bool begin = std::string_view(partial_).substr(head_, end - head_) == "BEGIN";
    // Consecutive lines travel as one frame: one write to sd-bus, one read by it.
    if (ready_.empty() || ready_.back().kind != Frame::Kind::Auth) ready_.push_back({Frame::Kind::Auth, {}, {}});
    ready_.back().bytes.append(partial_, head_, end + 2 - head_);
    head_ = end + 2;
    if (begin) authenticating_ = false;
    return true;
}

std::expected<bool, std::string> InboundFramer::cutMessage() {
    const std::string_view buf = std::string_view(partial_).substr(head_);
    if (buf.size() < kFixedHeader) return false;
    if (buf[0] != 'l' && buf[0] != 'B') return std::unexpected("not a D-Bus message (endianness byte)");
    if (static_cast<std::uint8_t>(buf[3]) != kProtocolVersion) return std::unexpected("not D-Bus protocol version 1");
    const bool little = buf[0] == 'l';
    const std::size_t body = readU32(buf, 4, little);
    const std::size_t fields = readU32(buf, 12, little);
    if (body > kMaxMessageBytes || fields > kMaxMessageBytes ||
        alignUp(kFixedHeader + fields, 8) + body > kMaxMessageBytes) {
        return std::unexpected("a message larger than 8 MiB");
    }
    const std::size_t total = alignUp(kFixedHeader + fields, 8) + body;
    if (buf.size() < total) return false;
    auto declared = declaredFds(buf.substr(0, total), little, kFixedHeader + fields);
    if (!declared) return std::unexpected(std::move(declared.error()));
    if (*declared > fds_.size()) {
        return std::unexpected("a message declaring " + std::to_string(*declared) + " file descriptors came with " +
                               std::to_string(fds_.size()));
    }
    Frame frame{Frame::Kind::Message, std::string(buf.substr(0, total)), {}};
    for (std::uint32_t i = 0; i < *declared; ++i) {
        frame.fds.push_back(std::move(fds_.front()));
        fds_.pop_front();
    }
    head_ += total;
    ready_.push_back(std::move(frame));
    return true;
}

Frame InboundFramer::next() {
    Frame f = std::move(ready_.front());
    ready_.pop_front();
    return f;
}

}  // namespace tio::bus
