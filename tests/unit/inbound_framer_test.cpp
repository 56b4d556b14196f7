// InboundFramer: what sd-bus is given of a client's stream. Messages come from the
// raw client's marshaller (support/raw_dbus.hpp); fds are pipes, so whether one was
// closed shows at its other end.
#include "bus/inbound_framer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>

#include "support/raw_dbus.hpp"

namespace tio::bus {
namespace {

using test::marshal;
using test::RawCall;

// A pipe whose write end is given away; `writerClosed()` says whether it was closed.
struct Pipe {
    UniqueFd read_end;
    UniqueFd write_end;
    Pipe() {
        int p[2];
        EXPECT_EQ(::pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
        read_end.reset(p[0]);
        write_end.reset(p[1]);
    }
    [[nodiscard]] bool writerClosed() const {
        char c = 0;
        return ::read(read_end.get(), &c, 1) == 0;  // EOF: no writer left
    }
};

std::vector<UniqueFd> give(Pipe& p) {
    std::vector<UniqueFd> v;
    v.push_back(std::move(p.write_end));
    return v;
}

RawCall call(std::optional<std::uint32_t> unix_fds = std::nullopt) {
    return RawCall{.serial = 3,
                   .interface = "org.tio.Guest1",
                   .member = "AttachVm",
                   .signature = "ha{sv}",
                   .body = std::string(8, '\0'),
                   .unix_fds = unix_fds};
}

const std::string kAuth = test::RawDbusClient::authLines();

TEST(InboundFramer, AuthLinesThenACallWithItsFdFromOneRead) {
    InboundFramer f;
    Pipe p;
    const std::string msg = marshal(call(1U));
    ASSERT_TRUE(f.feed(kAuth + msg, give(p)));
    ASSERT_TRUE(f.hasFrame());
    const Frame auth = f.next();
    EXPECT_EQ(auth.kind, Frame::Kind::Auth);
    EXPECT_EQ(auth.bytes, kAuth) << "all lines up to BEGIN, in one frame";
    ASSERT_TRUE(f.hasFrame());
    Frame m = f.next();
    EXPECT_EQ(m.kind, Frame::Kind::Message);
    EXPECT_EQ(m.bytes, msg);
    ASSERT_EQ(m.fds.size(), 1U);
    EXPECT_FALSE(f.hasFrame());
    EXPECT_FALSE(f.authenticating());
    EXPECT_FALSE(p.writerClosed()) << "the frame owns it";
    m.fds.clear();
    EXPECT_TRUE(p.writerClosed());
}

TEST(InboundFramer, AMessageFedByteByByteIsOneFrame) {
    InboundFramer f;
    ASSERT_TRUE(f.feed(kAuth, {}));
    (void)f.next();
    const std::string msg = marshal(call()) + marshal(call());
    for (char c : msg) ASSERT_TRUE(f.feed(std::string_view(&c, 1), {}));
    ASSERT_TRUE(f.hasFrame());
    EXPECT_EQ(f.next().bytes, marshal(call()));
    ASSERT_TRUE(f.hasFrame());
    (void)f.next();
    EXPECT_FALSE(f.hasFrame());
    EXPECT_EQ(f.buffered(), 0U);
}

// A line is searched for its end once however it is fed (the framer remembers how
// far it looked), and a "\r\n" split between two reads still ends it.
TEST(InboundFramer, AuthLinesFedByteByByteAreTheSameFrame) {
    InboundFramer f;
    const std::string msg = marshal(call());
    for (char c : kAuth + msg) ASSERT_TRUE(f.feed(std::string_view(&c, 1), {}));
    ASSERT_TRUE(f.hasFrame());
    EXPECT_EQ(f.next().bytes, kAuth);
    ASSERT_TRUE(f.hasFrame());
    EXPECT_EQ(f.next().bytes, msg);
    EXPECT_FALSE(f.authenticating());
    EXPECT_EQ(f.buffered(), 0U);
}

TEST(InboundFramer, FdsThatDoNotAddUpAreAViolationAndClosed) {
    struct Case {
        const char* what;
        std::optional<std::uint32_t> declared;
        int sent;
    };
    for (const Case c : {Case{"no UNIX_FDS", std::nullopt, 1}, Case{"more than declared", 1U, 2},
                         Case{"fewer than declared", 2U, 1}}) {
        SCOPED_TRACE(c.what);
        InboundFramer f;
        ASSERT_TRUE(f.feed(kAuth, {}));
        std::vector<Pipe> pipes(c.sent);
        std::vector<UniqueFd> fds;
        for (auto& p : pipes) fds.push_back(std::move(p.write_end));
        EXPECT_FALSE(f.feed(marshal(call(c.declared)), std::move(fds)));
        for (auto& p : pipes) EXPECT_TRUE(p.writerClosed());
        EXPECT_FALSE(f.feed(marshal(call()), {})) << "a violation is final";
    }
}

TEST(InboundFramer, FdsDuringAuthenticationAreAViolation) {
    InboundFramer f;
    Pipe p;
    EXPECT_FALSE(f.feed(std::string(1, '\0') + "AUTH EXTERNAL 30\r\n", give(p)));
    EXPECT_TRUE(p.writerClosed());
}

TEST(InboundFramer, MoreFdsPendingThanAMessageMayCarryIsAViolation) {
    InboundFramer f;
    ASSERT_TRUE(f.feed(kAuth, {}));
    std::vector<Pipe> pipes(kMaxPendingFds + 1);
    std::vector<UniqueFd> fds;
    for (auto& p : pipes) fds.push_back(std::move(p.write_end));
    const std::string msg = marshal(call(static_cast<std::uint32_t>(pipes.size())));
    EXPECT_FALSE(f.feed(std::string_view(msg).substr(0, 20), std::move(fds)));
    for (auto& p : pipes) EXPECT_TRUE(p.writerClosed());
}

TEST(InboundFramer, MalformedHeadersAreViolations) {
    const std::string good = marshal(call());
    auto with = [&](std::size_t at, char byte) {
        std::string m = good;
        m[at] = byte;
        return m;
    };
    auto sized = [&](std::uint32_t body) {
        std::string m = good;
        std::memcpy(m.data() + 4, &body, 4);
        return m;
    };
    // A header field holding an array: offset 16 is the first field (PATH, 'o').
    const std::string container = with(18, 'a');
    for (const auto& [what, bytes] : std::vector<std::pair<const char*, std::string>>{
             {"endianness", with(0, 'x')},
             {"version", with(3, 2)},
             {"too large", sized(static_cast<std::uint32_t>(kMaxMessageBytes))},
             {"container field", container}}) {
        SCOPED_TRACE(what);
        InboundFramer f;
        ASSERT_TRUE(f.feed(kAuth, {}));
        (void)f.next();
        EXPECT_FALSE(f.feed(bytes, {}));
        EXPECT_FALSE(f.hasFrame());
    }
}

TEST(InboundFramer, AnEndlessAuthLineIsAViolation) {
    InboundFramer f;
    EXPECT_TRUE(f.feed(std::string(1, '\0') + std::string(kMaxAuthLine - 1, 'A'), {}));
    EXPECT_FALSE(f.feed("A", {}));
}

}  // namespace
}  // namespace tio::bus
