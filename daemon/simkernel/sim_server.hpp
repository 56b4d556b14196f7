#pragma once
// tio-simkernel's event loop: the kernel socket (syscall transport), one source per
// open simulated file, and the org.tio.Sim1 control door.
#include <systemd/sd-event.h>

#include <map>
#include <memory>

#include "bus/p2p_server.hpp"
#include "simkernel/sim_kernel.hpp"

namespace tio::sim {

class SimServer {
public:
    SimServer(sd_event* event, SimKernel& kernel) : event_(event), kernel_(kernel) {}
    SimServer(const SimServer&) = delete;
    SimServer& operator=(const SimServer&) = delete;
    ~SimServer();

    // Both listening sockets are bound before this returns; 0 or a negative errno.
    [[nodiscard]] int listen(const std::string& kernel_path, const std::string& control_path);

private:
    struct Conn {
        SimServer* server = nullptr;
        UniqueFd fd;
        SimFile* file = nullptr;  // null for a broker connection
        sd_event_source* source = nullptr;
    };
    static int onKernelAccept(sd_event_source*, int, std::uint32_t, void*);
    static int onConn(sd_event_source*, int, std::uint32_t, void*);
    static void watchFile(void* ctx, int server_fd, SimFile* file);
    void addConn(UniqueFd fd, SimFile* file);
    void closeConn(Conn* c);
    // Releases every file whose last userspace fd is already closed but whose EOF the
    // event loop has not dispatched yet: the oracle answers about every close() its
    // caller made before asking, whatever order epoll reports them in.
    void settle();
    int setupControl(sd_bus* bus);

    sd_event* event_;
    SimKernel& kernel_;
    UniqueFd kernel_listen_;
    sd_event_source* kernel_accept_ = nullptr;
    std::map<Conn*, std::unique_ptr<Conn>> conns_;
    std::unique_ptr<bus::P2pServer> control_;
};

}  // namespace tio::sim
