// The guest socket against a client that speaks the wire protocol itself
// (support/raw_dbus.hpp), doing what libraries never do: fds that do not add up,
// a call with an fd in the same write as BEGIN, calls without reading a reply,
// more connections than allowed. Every case checks the daemon's own fds and that a
// well-behaved client is still served.
#include <fcntl.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <vector>

#include "support/daemon_rig.hpp"
#include "support/eventually.hpp"
#include "support/raw_dbus.hpp"

namespace tio::test {
namespace {

std::vector<UniqueFd> openDevNull(std::size_t n) {
    std::vector<UniqueFd> fds;
    for (std::size_t i = 0; i < n; ++i) fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    return fds;
}

std::vector<int> raw(const std::vector<UniqueFd>& fds) {
    std::vector<int> out;
    for (const auto& f : fds) out.push_back(f.get());
    return out;
}

// AttachVm(h vm, a{sv} options) with fd index 0 and no options.
RawCall attachVm(std::uint32_t serial, std::optional<std::uint32_t> unix_fds) {
    return RawCall{.serial = serial,
                   .interface = "org.tio.Guest1",
                   .member = "AttachVm",
                   .signature = "ha{sv}",
                   .body = std::string(8, '\0'),
                   .unix_fds = unix_fds};
}

// What differs between two fd listings, for a failure message.
std::string fdDiff(const std::vector<std::string>& before, const std::vector<std::string>& now) {
    std::string out = "now:";
    for (const auto& f : now) out += " " + f;
    out += "\nbefore:";
    for (const auto& f : before) out += " " + f;
    return out;
}

std::size_t residentKib(pid_t pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(status, line);) {
        if (line.starts_with("VmRSS:")) return std::stoul(line.substr(6));
    }
    return 0;
}

class RawClientTest : public ::testing::Test {
protected:
    SimProcess sim{"tdx"};
    PrivateSystemBus bus;
    std::unique_ptr<DaemonProcess> daemon;

    // Each test starts the daemon with the options it needs.
    void start(std::vector<std::string> extra = {}) {
        daemon = std::make_unique<DaemonProcess>(sim, "vm1", bus.address(), std::move(extra));
    }
    // The daemon's fds once start-up and the last client's goodbye are behind it: the
    // same in two looks 100 ms apart.
    std::vector<std::string> settledFds() {
        std::vector<std::string> last = daemon->openFds();
        for (int i = 0; i < 50; ++i) {
            ::usleep(100'000);
            auto now = daemon->openFds();
            if (now == last) break;
            last = std::move(now);
        }
        return last;
    }
    // A client that behaves gets its answer.
    void expectServed() {
        RawDbusClient good(daemon->socket());
        ASSERT_TRUE(good.handshake());
        ASSERT_EQ(good.send(marshal(getAllGuest(7))), 0);
        const auto reply = good.replyTo(7);
        ASSERT_TRUE(reply.has_value());
        EXPECT_EQ(reply->type, 2) << reply->error_name;
    }
};

// sd-bus 252 drops such a message and never closes its fds (up to 253 each, until the
// process exits). The daemon cuts the stream itself: the peer is dropped, and every
// fd it sent is closed.
TEST_F(RawClientTest, FdsThatDoNotMatchUnixFdsAreClosedAndThePeerDropped) {
    start();
    expectServed();
    const auto baseline = settledFds();
    struct Case {
        const char* what;
        std::size_t sent;
        std::optional<std::uint32_t> declared;
    };
    for (const Case c : {Case{"fds and no UNIX_FDS", 8, std::nullopt}, Case{"more fds than declared", 5, 1U},
                         Case{"fewer fds than declared", 1, 4U}, Case{"more than a message may carry", 200, 200U}}) {
        SCOPED_TRACE(c.what);
        for (int round = 0; round < 5; ++round) {
            RawDbusClient hostile(daemon->socket());
            ASSERT_TRUE(hostile.handshake());
            const auto fds = openDevNull(c.sent);
            ASSERT_EQ(hostile.send(marshal(attachVm(1, c.declared)), raw(fds)), 0);
            EXPECT_TRUE(hostile.closedByServer()) << "a peer whose fds do not add up is disconnected";
        }
        EXPECT_TRUE(eventually([&] { return daemon->openFds() == baseline; })) << "not one fd kept\n"
                                                                               << fdDiff(baseline, daemon->openFds());
    }
    expectServed();
}

// libdbus and sd-bus clients send BEGIN and their first call in one write; sd-bus 252
// closes the connection when that call's fds are read with BEGIN (systemd PR #5520).
TEST_F(RawClientTest, AFirstCallWithAnFdInTheSameWriteAsBeginIsAnswered) {
    start();
    const auto devnull = openDevNull(1);
    int answered = 0;
    for (int i = 0; i < 300; ++i) {
        RawDbusClient c(daemon->socket());
        ASSERT_TRUE(c.connected());
        ASSERT_EQ(c.send(RawDbusClient::authLines() + marshal(attachVm(1, 1U)), raw(devnull)), 0);
        ASSERT_TRUE(c.readAuthReplies()) << "round " << i;
        const auto reply = c.replyTo(1);
        // /dev/null is no VM: a named error, but an answer.
        if (reply && reply->type == 3 && reply->error_name.starts_with("org.tio.Error.")) ++answered;
    }
    EXPECT_EQ(answered, 300);
}

// A peer that pipelines calls and never reads the replies is not read from once it
// has a few replies waiting: it fills its own socket, not the daemon's memory.
TEST_F(RawClientTest, APeerThatNeverReadsIsHeldBackNotBuffered) {
    start();
    expectServed();
    const auto fds = settledFds();
    const std::size_t rss_before = residentKib(daemon->pid());
    auto hog = std::make_unique<RawDbusClient>(daemon->socket());
    ASSERT_TRUE(hog->handshake());
    ASSERT_EQ(::fcntl(hog->fd(), F_SETFL, O_NONBLOCK), 0);
    const std::string call = marshal(getAllGuest(1));
    std::size_t sent = 0;
    // Until the socket stays full for a while: the daemon has stopped reading.
    for (int idle = 0; idle < 50 && sent < 1'000'000;) {
        const ssize_t n = ::send(hog->fd(), call.data(), call.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n == static_cast<ssize_t>(call.size())) {
            ++sent;
            idle = 0;
        } else if (n > 0) {
            break;  // the socket filled in the middle of a call: as far as it goes
        } else {
            ++idle;
            ::usleep(10'000);
        }
    }
    EXPECT_LT(sent, 1'000'000U) << "the daemon kept reading calls whose replies nobody reads";
    expectServed();
    const std::size_t grown = residentKib(daemon->pid()) - std::min(rss_before, residentKib(daemon->pid()));
    EXPECT_LT(grown, 16U * 1024) << sent << " calls sent; the daemon grew by " << grown << " KiB";
    hog.reset();
    EXPECT_TRUE(eventually([&] { return daemon->openFds() == fds; })) << fdDiff(fds, daemon->openFds());
}

// Connections are counted per uid at accept; one over the limit is closed at once.
TEST_F(RawClientTest, ConnectionsOverThePerUidLimitAreClosedAtAccept) {
    start({"--max-connections-per-uid", "4"});
    std::vector<std::unique_ptr<RawDbusClient>> held;
    for (int i = 0; i < 4; ++i) {
        held.push_back(std::make_unique<RawDbusClient>(daemon->socket()));
        ASSERT_TRUE(held.back()->handshake()) << i;
    }
    RawDbusClient fifth(daemon->socket());
    EXPECT_FALSE(fifth.handshake());
    EXPECT_TRUE(fifth.closedByServer(1000));
    held.pop_back();
    EXPECT_TRUE(eventually([&] {
        RawDbusClient again(daemon->socket());
        return again.handshake();
    })) << "a slot freed is a slot to take";
}

// A peer that reads nothing while signals keep coming is disconnected at its quota
// of queued messages; the others are not.
TEST_F(RawClientTest, APeerOverItsQueueQuotaIsDisconnected) {
    start({"--max-queued-messages", "16"});
    RawDbusClient deaf(daemon->socket());
    ASSERT_TRUE(deaf.handshake());
    // Every VMM connection that comes and goes changes Guest1.Clients: two
    // PropertiesChanged for each, to every peer.
    bool dropped = false;
    for (int i = 0; i < 20000 && !dropped; ++i) {
        {
            RawDbusClient passer(daemon->socket());
            ASSERT_TRUE(passer.handshake());
            ASSERT_EQ(passer.send(marshal(getAllGuest(1))), 0);
            ASSERT_TRUE(passer.replyTo(1).has_value()) << i;
        }
        if (i % 100 == 99) dropped = deaf.hungUp(0);
    }
    EXPECT_TRUE(dropped || deaf.hungUp(1000));
    expectServed();
}

}  // namespace
}  // namespace tio::test
