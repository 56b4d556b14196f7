#include "bus/p2p_server.hpp"

#include <sys/socket.h>

#include <cerrno>

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

}  // namespace

P2pServer::P2pServer(sd_event* event, UniqueFd listen_fd, std::string sender, SetupFn setup, GoneFn gone, AdmitFn admit)
    : event_(event),
      listen_fd_(std::move(listen_fd)),
      sender_(std::move(sender)),
      setup_(std::move(setup)),
      gone_(std::move(gone)),
      admit_(std::move(admit)) {}

P2pServer::~P2pServer() {
    sd_event_source_disable_unref(accept_source_);
    while (!peers_.empty()) drop(peers_.front().get());
}

int P2pServer::start() { return sd_event_add_io(event_, &accept_source_, listen_fd_.get(), EPOLLIN, onAccept, this); }

int P2pServer::onAccept(sd_event_source*, int, std::uint32_t, void* userdata) {
    static_cast<P2pServer*>(userdata)->accept();
    return 0;
}

void P2pServer::accept() {
    UniqueFd cfd(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!cfd) return;                          // EAGAIN or a client that vanished: nothing to do
    if (admit_ && !admit_(cfd.get())) return;  // turned away: closing is all it costs
    auto peer = std::make_unique<Peer>();
    peer->server = this;
    sd_bus* bus = nullptr;
    sd_id128_t id;
    if (sd_bus_new(&bus) < 0) return;
    peer->bus = bus;
    const int fd = cfd.get();
    int r = sd_bus_set_fd(bus, fd, fd);
    if (r >= 0) (void)cfd.release();  // the bus owns it now
    if (r >= 0) r = sd_id128_randomize(&id);
    if (r >= 0) r = sd_bus_set_server(bus, 1, id);
    if (r >= 0) r = sd_bus_negotiate_fds(bus, 1);
    if (r >= 0) r = sd_bus_set_anonymous(bus, 0);
    if (r >= 0) r = sd_bus_start(bus);
    if (r >= 0) r = sd_bus_set_sender(bus, sender_.c_str());
    if (r >= 0)
        r = sd_bus_add_object_vtable(bus, nullptr, "/org/freedesktop/DBus", "org.freedesktop.DBus", kShimVtable,
                                     nullptr);
    if (r >= 0)
        r = sd_bus_match_signal(bus, nullptr, nullptr, "/org/freedesktop/DBus/Local", "org.freedesktop.DBus.Local",
                                "Disconnected", onDisconnected, peer.get());
    if (r >= 0) r = setup_(bus);
    if (r >= 0) r = sd_bus_attach_event(bus, event_, SD_EVENT_PRIORITY_NORMAL);
    if (r >= 0) r = sd_event_add_post(event_, &peer->post, onPost, peer.get());
    if (r < 0) {
        sd_event_source_disable_unref(peer->post);
        sd_bus_detach_event(bus);
        sd_bus_flush_close_unref(bus);
        if (gone_) gone_(bus);
        return;
    }
    peers_.push_back(std::move(peer));
}

int P2pServer::onPost(sd_event_source*, void* userdata) {
    auto* peer = static_cast<Peer*>(userdata);
    // Drain what sd-bus has buffered but not dispatched (toolchain.md 1n). A post
    // source fires after every other event, so this is cheap when nothing is queued.
    while (!peer->dead && sd_bus_process(peer->bus, nullptr) > 0) {
    }
    if (peer->dead) peer->server->drop(peer);
    return 0;
}

int P2pServer::onDisconnected(sd_bus_message*, void* userdata, sd_bus_error*) {
    auto* peer = static_cast<Peer*>(userdata);
    // Never free the peer here: this runs inside sd_bus_process, and freeing the bus
    // under it crashed (toolchain.md 3.3). The post source, which runs after every
    // dispatch, frees it once the processing loop has returned.
    peer->dead = true;
    return 0;
}

void P2pServer::drop(Peer* peer) {
    sd_bus* bus = peer->bus;
    sd_event_source_disable_unref(peer->post);
    sd_bus_detach_event(bus);
    sd_bus_flush_close_unref(bus);
    peers_.remove_if([&](const auto& p) { return p.get() == peer; });
    if (gone_) gone_(bus);
}

}  // namespace tio::bus
