#include "bus/p2p_server.hpp"

#include <sys/socket.h>

#include <spdlog/spdlog.h>

#include <array>
#include <cerrno>
#include <vector>

#include "common/unix_socket.hpp"

namespace tio::bus {
namespace {

int shimHello(sd_bus_message* m, void*, sd_bus_error*) { return sd_bus_reply_method_return(m, "s", ":1.1"); }
int shimMatch(sd_bus_message* m, void*, sd_bus_error*) { return sd_bus_reply_method_return(m, ""); }

// What a bus daemon would answer; on p2p there is none, but clients ask anyway.
const sd_bus_vtable kShimVtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD("Hello", "", "s", shimHello, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("AddMatch", "s", "", shimMatch, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("RemoveMatch", "s", "", shimMatch, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_VTABLE_END,
};

// Writes into a full socketpair, each after sd-bus drained it, before the peer is
// given up as stuck (sd-bus reads whatever is there, so one pass always progresses).
constexpr int kMaxStalledWrites = 64;

std::uint64_t queuedOut(sd_bus* bus) {
    std::uint64_t n = 0;
    (void)sd_bus_get_n_queued_write(bus, &n);
    return n;
}

}  // namespace

struct P2pServer::Peer {
    P2pServer* server = nullptr;
    sd_bus* bus = nullptr;
    UniqueFd client;  // a duplicate of the client's socket, read here; sd-bus writes the original
    UniqueFd to_bus;  // this end of the socketpair sd-bus reads
    sd_event_source* io = nullptr;
    sd_event_source* reap = nullptr;
    InboundFramer framer;
    uid_t uid = 0;
    std::uint32_t events = 0;
    bool dead = false;
};

P2pServer::P2pServer(sd_event* event, UniqueFd listen_fd, std::string sender, SetupFn setup, GoneFn gone, AdmitFn admit,
                     PeerLimits limits)
    : event_(event),
      listen_fd_(std::move(listen_fd)),
      sender_(std::move(sender)),
      setup_(std::move(setup)),
      gone_(std::move(gone)),
      admit_(std::move(admit)),
      limits_(limits),
      read_buffer_(kReadChunk) {}

P2pServer::~P2pServer() {
    sd_event_source_disable_unref(accept_source_);
    while (!peers_.empty()) drop(*peers_.begin()->second, nullptr);
}

int P2pServer::start() { return sd_event_add_io(event_, &accept_source_, listen_fd_.get(), EPOLLIN, onAccept, this); }

int P2pServer::onAccept(sd_event_source*, int, std::uint32_t, void* userdata) {
    static_cast<P2pServer*>(userdata)->accept();
    return 0;
}

bool P2pServer::underConnectionLimits(int fd, uid_t& uid) const {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return false;
    uid = cred.uid;
    const auto it = per_uid_.find(uid);
    const std::size_t mine = it == per_uid_.end() ? 0 : it->second;
    return peers_.size() < limits_.max_connections && mine < limits_.max_connections_per_uid;
}

void P2pServer::accept() {
    UniqueFd cfd(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!cfd) return;                          // EAGAIN or a client that vanished: nothing to do
    if (admit_ && !admit_(cfd.get())) return;  // turned away: closing is all it costs
    auto peer = std::make_unique<Peer>();
    peer->server = this;
    if (!underConnectionLimits(cfd.get(), peer->uid)) {
        spdlog::debug("event=connection-refused uid={} reason=over-connection-limit", peer->uid);
        return;
    }
    std::array<int, 2> pair{-1, -1};
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair.data()) < 0) return;
    UniqueFd bus_end(pair[0]);
    peer->to_bus.reset(pair[1]);
    auto reader = cfd.duplicate();
    if (!reader) return;
    peer->client = std::move(*reader);
    sd_bus* bus = nullptr;
    if (sd_bus_new(&bus) < 0) return;
    peer->bus = bus;
    const int client_fd = cfd.get();
    int r = sd_bus_set_fd(bus, bus_end.get(), client_fd);
    if (r >= 0) {  // the bus owns both now
        (void)bus_end.release();
        (void)cfd.release();
    }
    sd_id128_t id;
    if (r >= 0) r = sd_id128_randomize(&id);
    if (r >= 0) r = sd_bus_set_server(bus, 1, id);
    if (r >= 0) r = sd_bus_negotiate_fds(bus, 1);
    // The peer was identified at accept (SO_PEERCRED); sd-bus sees only the socketpair.
    if (r >= 0) r = sd_bus_set_anonymous(bus, 1);
    if (r >= 0) r = sd_bus_start(bus);
    // After the start, which raised it to 8 MiB (SO_SNDBUFFORCE as root).
    if (r >= 0 && ::setsockopt(client_fd, SOL_SOCKET, SO_SNDBUF, &limits_.socket_send_buffer,
                               sizeof limits_.socket_send_buffer) < 0) {
        r = -errno;
    }
    if (r >= 0) r = sd_bus_set_sender(bus, sender_.c_str());
    if (r >= 0)
        r = sd_bus_add_object_vtable(bus, nullptr, "/org/freedesktop/DBus", "org.freedesktop.DBus", kShimVtable,
                                     nullptr);
    if (r >= 0)
        r = sd_bus_match_signal(bus, nullptr, nullptr, "/org/freedesktop/DBus/Local", "org.freedesktop.DBus.Local",
                                "Disconnected", onDisconnected, peer.get());
    if (r >= 0) r = setup_(bus, client_fd);
    if (r >= 0) r = sd_event_add_io(event_, &peer->io, peer->client.get(), EPOLLIN, onIo, peer.get());
    if (r < 0) {
        sd_event_source_disable_unref(peer->io);
        sd_bus_close_unref(bus);
        if (gone_) gone_(bus);
        return;
    }
    peer->events = EPOLLIN;
    ++per_uid_[peer->uid];
    peers_.emplace(bus, std::move(peer));
}

int P2pServer::onIo(sd_event_source*, int, std::uint32_t revents, void* userdata) {
    auto* peer = static_cast<Peer*>(userdata);
    (void)peer->server->serve(*peer, revents);
    return 0;
}

bool P2pServer::serve(Peer& peer, std::uint32_t revents) {
    // First, what the peer can take now (sd-bus writes its queue in process()).
    if ((revents & EPOLLOUT) != 0 && !process(peer)) return false;
    bool may_read = (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0;
    for (;;) {
        // A peer that leaves its replies unread gets nothing more done for it.
        while (peer.framer.hasFrame() && queuedOut(peer.bus) < limits_.pause_at) {
            if (!deliver(peer, peer.framer.next())) return false;
        }
        if (peer.framer.hasFrame() || queuedOut(peer.bus) >= limits_.pause_at || !may_read) break;
        may_read = false;  // one read per event: the other peers' turn comes next
        if (!readOnce(peer)) return false;
    }
    rearm(peer);
    return true;
}

bool P2pServer::readOnce(Peer& peer) {
    std::vector<UniqueFd> fds;
    auto n = unixsock::receiveSome(peer.client.get(), read_buffer_, fds);
    if (!n && n.error() == EAGAIN) return true;
    if (!n) {
        drop(peer, n.error() == EPROTO ? "sent more file descriptors at once than a message may carry" : nullptr);
        return false;
    }
    if (*n == 0) {  // the client closed its end
        drop(peer, nullptr);
        return false;
    }
    if (auto fed = peer.framer.feed(std::span(read_buffer_).first(*n), std::move(fds)); !fed) {
        spdlog::warn("event=peer-dropped uid={} reason=\"{}\"", peer.uid, fed.error());
        drop(peer, nullptr);
        return false;
    }
    return true;
}

bool P2pServer::deliver(Peer& peer, Frame frame) {
    if (frame.kind == Frame::Kind::Message && sd_bus_is_ready(peer.bus) <= 0) {
        // BEGIN is with sd-bus; nothing after it may reach sd-bus before it has taken
        // it (a call read together with BEGIN would be lost).
        if (!process(peer)) return false;
        if (sd_bus_is_ready(peer.bus) <= 0) {
            drop(peer, "sent a call before authentication succeeded");
            return false;
        }
    }
    std::vector<int> fds;
    fds.reserve(frame.fds.size());
    for (const auto& fd : frame.fds) fds.push_back(fd.get());
    std::span<const char> rest(frame.bytes);
    for (int stalled = 0; !rest.empty();) {
        auto sent = unixsock::sendSome(peer.to_bus.get(), rest, fds);
        if (sent) {
            rest = rest.subspan(*sent);
            fds.clear();  // they went with the first byte
            continue;
        }
        if (sent.error() != EAGAIN || ++stalled > kMaxStalledWrites) {
            drop(peer, "its connection to sd-bus is stuck");
            return false;
        }
        if (!process(peer)) return false;  // let sd-bus take what is in the socketpair
    }
    return process(peer);
}

bool P2pServer::process(Peer& peer) {
    int r = 0;
    while (!peer.dead && (r = sd_bus_process(peer.bus, nullptr)) > 0) {
    }
    if (peer.dead || r < 0) {
        drop(peer, nullptr);
        return false;
    }
    return true;
}

void P2pServer::rearm(Peer& peer) {
    const std::uint64_t out = queuedOut(peer.bus);
    std::uint32_t events = 0;
    if (!peer.framer.hasFrame() && out < limits_.pause_at) events |= EPOLLIN;
    if (out > 0) events |= EPOLLOUT;
    if (events != peer.events && sd_event_source_set_io_events(peer.io, events) >= 0) peer.events = events;
}

void P2pServer::outputQueued(sd_bus* bus) {
    const auto it = peers_.find(bus);
    if (it == peers_.end() || it->second->dead) return;
    Peer& peer = *it->second;
    if (queuedOut(bus) > limits_.max_queued_out) {
        reapLater(peer, "over its quota of unread messages");
        return;
    }
    rearm(peer);
}

void P2pServer::reapLater(Peer& peer, const char* why) {
    if (peer.dead) return;
    peer.dead = true;
    if (why != nullptr) spdlog::warn("event=peer-dropped uid={} reason=\"{}\"", peer.uid, why);
    if (sd_event_add_defer(event_, &peer.reap, onReap, &peer) >= 0) {
        (void)sd_event_source_set_enabled(peer.reap, SD_EVENT_ONESHOT);
    }
}

int P2pServer::onReap(sd_event_source*, void* userdata) {
    auto* peer = static_cast<Peer*>(userdata);
    peer->server->drop(*peer, nullptr);
    return 0;
}

int P2pServer::onDisconnected(sd_bus_message*, void* userdata, sd_bus_error*) {
    // Runs inside sd_bus_process: the peer is freed after it returns (process()).
    static_cast<Peer*>(userdata)->dead = true;
    return 0;
}

void P2pServer::drop(Peer& peer, const char* why) {
    if (why != nullptr) spdlog::warn("event=peer-dropped uid={} reason=\"{}\"", peer.uid, why);
    sd_bus* bus = peer.bus;
    sd_event_source_disable_unref(peer.io);
    sd_event_source_disable_unref(peer.reap);
    // No flush: a peer that does not read would block the daemon in it.
    sd_bus_close_unref(bus);
    if (auto it = per_uid_.find(peer.uid); it != per_uid_.end() && --it->second == 0) per_uid_.erase(it);
    peers_.erase(bus);  // frees `peer`
    if (gone_) gone_(bus);
}

}  // namespace tio::bus
