#pragma once
// A peer-to-peer D-Bus server on a listening AF_UNIX socket, written on raw sd-bus
// because sdbus-c++ 1.2 cannot serve p2p (toolchain.md 1g). Every accepted client
// gets its own sd_bus in server mode, attached to one sd-event loop. It carries the
// two things every client library needs on p2p (toolchain.md 1h, 1n):
//  - an org.freedesktop.DBus shim (Hello/AddMatch/RemoveMatch) and sd_bus_set_sender,
//    so sdbus-c++, gdbus, busctl and dbus-next clients connect and receive signals;
//  - a post-event drain, because sd-bus 252 never dispatches a call that arrived in
//    the same read as the auth BEGIN (dbus-python hits this every time).
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include <functional>
#include <list>
#include <memory>
#include <string>

#include "common/unique_fd.hpp"

namespace tio::bus {

class P2pServer {
public:
    // Registers objects on one new connection; a negative errno refuses the client.
    using SetupFn = std::function<int(sd_bus* bus)>;
    // Called after a client's connection is gone; `bus` only identifies it (already freed).
    using GoneFn = std::function<void(sd_bus* bus)>;
    // Decides on a just-accepted connection's socket, before any D-Bus work: false
    // closes it at once (no bus, no client, nothing queued for it).
    using AdmitFn = std::function<bool(int fd)>;

    P2pServer(sd_event* event, UniqueFd listen_fd, std::string sender, SetupFn setup, GoneFn gone = {},
              AdmitFn admit = {});
    P2pServer(const P2pServer&) = delete;
    P2pServer& operator=(const P2pServer&) = delete;
    ~P2pServer();

    // 0 or a negative errno.
    [[nodiscard]] int start();
    [[nodiscard]] std::size_t clients() const noexcept { return peers_.size(); }

private:
    struct Peer {
        P2pServer* server = nullptr;
        sd_bus* bus = nullptr;
        sd_event_source* post = nullptr;
        bool dead = false;
    };
    static int onAccept(sd_event_source* s, int fd, std::uint32_t revents, void* userdata);
    static int onPost(sd_event_source* s, void* userdata);
    static int onDisconnected(sd_bus_message* m, void* userdata, sd_bus_error* err);
    void accept();
    void drop(Peer* peer);

    sd_event* event_;
    UniqueFd listen_fd_;
    std::string sender_;
    SetupFn setup_;
    GoneFn gone_;
    AdmitFn admit_;
    sd_event_source* accept_source_ = nullptr;
    std::list<std::unique_ptr<Peer>> peers_;
};

}  // namespace tio::bus
