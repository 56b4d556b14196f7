#pragma once
// A peer-to-peer D-Bus server on a listening AF_UNIX socket, written on raw sd-bus
// because sdbus-c++ 1.2 cannot serve p2p (toolchain.md 1g). Every accepted client
// gets its own sd_bus in server mode. It carries what every client library needs on
// p2p (toolchain.md 1h): an org.freedesktop.DBus shim (Hello/AddMatch/RemoveMatch)
// and sd_bus_set_sender, so sdbus-c++, gdbus, busctl and dbus-next clients connect
// and receive signals.
//
// sd-bus never reads a client's socket. The server reads it, cuts it into frames
// (bus/inbound_framer.hpp: whole messages with exactly the fds they declare) and
// hands them to sd-bus over a socketpair; sd-bus writes its replies to the client's
// socket directly. That closes sd-bus 252's fd leak on a message whose fds do not
// match its header, and its dropped first call when fds arrive with BEGIN (PR
// #5520); it also lets the server hold back a peer that does not read its replies.
//
// Costs and limits (dbus-broker's model): the server drives each bus itself, with no
// sd-bus event sources, so an idle peer costs nothing per event; only peers with
// something to read or write are touched. Connections are limited per uid and in
// total at accept; a peer with kPauseAt replies unread is not read from until it
// catches up; one with more than kMaxQueuedOut messages queued (signals keep coming)
// is disconnected, and so is one that breaks the framing.
//
// Identity: sd-bus sees only the socketpair, so its view of the peer's credentials
// is the daemon's own. The peer's identity is the client socket's SO_PEERCRED, which
// the setup callback gets (the socket) and must keep; anonymous authentication is
// enabled on the bus so that sd-bus does not compare the client's claimed uid with
// the socketpair's.
#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "bus/inbound_framer.hpp"
#include "common/unique_fd.hpp"

namespace tio::bus {

struct PeerLimits {
    std::size_t max_connections = 64;          // in total
    std::size_t max_connections_per_uid = 16;  // per SO_PEERCRED uid
    std::size_t pause_at = 8;                  // unread replies: stop reading the peer's calls
    std::size_t max_queued_out = 1024;         // unread messages (replies and signals): disconnect
    // The kernel's buffer towards each client (sd-bus would force 8 MiB): with
    // max_queued_out, what a peer that does not read can cost the daemon.
    int socket_send_buffer = 256 << 10;
};

class P2pServer {
public:
    // Registers objects on one new connection whose client is on `peer_socket` (for
    // SO_PEERCRED; the bus owns it); a negative errno refuses the client.
    using SetupFn = std::function<int(sd_bus* bus, int peer_socket)>;
    // Called after a client's connection is gone; `bus` only identifies it (already freed).
    using GoneFn = std::function<void(sd_bus* bus)>;
    // Decides on a just-accepted connection's socket, before any D-Bus work: false
    // closes it at once (no bus, no client, nothing queued for it).
    using AdmitFn = std::function<bool(int fd)>;

    P2pServer(sd_event* event, UniqueFd listen_fd, std::string sender, SetupFn setup, GoneFn gone = {},
              AdmitFn admit = {}, PeerLimits limits = {});
    P2pServer(const P2pServer&) = delete;
    P2pServer& operator=(const P2pServer&) = delete;
    ~P2pServer();

    // 0 or a negative errno.
    [[nodiscard]] int start();
    [[nodiscard]] std::size_t clients() const noexcept { return peers_.size(); }
    // Something was queued on `bus` outside its own dispatch (a signal to everyone):
    // wait for its socket to drain, or disconnect it when it is over its quota.
    void outputQueued(sd_bus* bus);

private:
    struct Peer;
    static int onAccept(sd_event_source* s, int fd, std::uint32_t revents, void* userdata);
    static int onIo(sd_event_source* s, int fd, std::uint32_t revents, void* userdata);
    static int onReap(sd_event_source* s, void* userdata);
    static int onDisconnected(sd_bus_message* m, void* userdata, sd_bus_error* err);
    void accept();
    [[nodiscard]] bool underConnectionLimits(int fd, uid_t& uid) const;
    // One turn of a peer's pump; false when the peer was dropped.
    bool serve(Peer& peer, std::uint32_t revents);
    [[nodiscard]] bool readOnce(Peer& peer);
    [[nodiscard]] bool deliver(Peer& peer, Frame frame);
    [[nodiscard]] bool process(Peer& peer);
    void rearm(Peer& peer);
    // Frees the peer later, outside whatever is running now.
    void reapLater(Peer& peer, const char* why);
    void drop(Peer& peer, const char* why);

    sd_event* event_;
    UniqueFd listen_fd_;
    std::string sender_;
    SetupFn setup_;
    GoneFn gone_;
    AdmitFn admit_;
    PeerLimits limits_;
    sd_event_source* accept_source_ = nullptr;
    std::unordered_map<sd_bus*, std::unique_ptr<Peer>> peers_;
    std::unordered_map<uid_t, std::size_t> per_uid_;
    // How much of a client's stream one event reads: small enough that a busy peer
    // yields to the others between reads, large enough for a batch of calls.
    static constexpr std::size_t kReadChunk = 64U << 10;
    std::vector<char> read_buffer_;  // shared by all peers: one event at a time
};

}  // namespace tio::bus
