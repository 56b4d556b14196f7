#include "simkernel/sim_server.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "bus/listen_socket.hpp"
#include "kernel/ioctl_table.hpp"
#include "kernel/kernel_error.hpp"

namespace tio::sim {

SimServer::~SimServer() {
    sd_event_source_disable_unref(kernel_accept_);
    kernel_.setWatcher(nullptr, nullptr);
    // Dropping every userspace reference releases every file: the references files
    // hold on each other form a DAG (VFIO -> iommufd -> guest_memfd -> VM), so the
    // cascade of releases reaches them all, exactly as at process exit in the kernel.
    while (!conns_.empty()) closeConn(conns_.begin()->first);
}

int SimServer::listen(const std::string& kernel_path, const std::string& control_path) {
    auto k = bus::listenUnix(kernel_path, SOCK_SEQPACKET, 0666);
    if (!k) return -k.error();
    kernel_listen_ = std::move(*k);
    // Every request carries its sender's pid, as the kernel knows `current` (inherited
    // by each accepted connection).
    if (auto r = unixsock::passCredentials(kernel_listen_.get()); !r) return -r.error();
    int r = sd_event_add_io(event_, &kernel_accept_, kernel_listen_.get(), EPOLLIN, onKernelAccept, this);
    if (r < 0) return r;
    kernel_.setWatcher(watchFile, this);
    auto c = bus::listenUnix(control_path, SOCK_STREAM, 0666);
    if (!c) return -c.error();
    control_ = std::make_unique<bus::P2pServer>(event_, std::move(*c), "org.tio.Sim1",
                                                [this](sd_bus* bus, int) { return setupControl(bus); });
    return control_->start();
}

int SimServer::onKernelAccept(sd_event_source*, int fd, std::uint32_t, void* userdata) {
    auto* self = static_cast<SimServer*>(userdata);
    UniqueFd c(::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC));
    if (c) self->addConn(std::move(c), nullptr);
    return 0;
}

void SimServer::watchFile(void* ctx, int server_fd, SimFile* file) {
    static_cast<SimServer*>(ctx)->addConn(UniqueFd(server_fd), file);
}

void SimServer::addConn(UniqueFd fd, SimFile* file) {
    auto conn = std::make_unique<Conn>();
    conn->server = this;
    conn->fd = std::move(fd);
    conn->file = file;
    if (sd_event_add_io(event_, &conn->source, conn->fd.get(), EPOLLIN, onConn, conn.get()) < 0) {
        if (file != nullptr) kernel_.closedByUser(file);
        return;
    }
    // Syscalls and EOFs (= releases) outrank the control door: a close() that happened
    // before a Counters call is released before the call is answered, as it would be
    // in the kernel, so the oracle never reports a file its user already closed.
    sd_event_source_set_priority(conn->source, SD_EVENT_PRIORITY_IMPORTANT);
    conns_[conn.get()] = std::move(conn);
}

void SimServer::closeConn(Conn* c) {
    sd_event_source_disable_unref(c->source);
    SimFile* file = c->file;
    conns_.erase(c);
    // The last userspace copy of this file is gone: the kernel's fput -> release.
    if (file != nullptr) kernel_.closedByUser(file);
}

void SimServer::settle() {
    for (bool again = true; again;) {
        again = false;
        for (auto& [ptr, c] : conns_) {
            pollfd p{c->fd.get(), POLLIN | POLLRDHUP, 0};
            // Closed by every holder and nothing left to read: the file's last fd is gone.
            if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP)) != 0 && (p.revents & POLLIN) == 0) {
                closeConn(ptr);
                again = true;  // releasing may close other files' connections' peers
                break;
            }
        }
    }
}

int SimServer::onConn(sd_event_source*, int fd, std::uint32_t revents, void* userdata) {
    auto* c = static_cast<Conn*>(userdata);
    SimServer* self = c->server;
    if ((revents & EPOLLIN) == 0) {
        self->closeConn(c);
        return 0;
    }
    auto msg = kernel::wire::receive(fd);
    if (!msg) {
        self->closeConn(c);  // EOF (every client copy closed) or a broken peer
        return 0;
    }
    const bool alive = self->kernel_.serve(fd, c->file, std::move(*msg));
    // Device traffic between any two kernel calls: every intermediate state of a
    // multi-call operation meets the generator's DMAs.
    self->kernel_.runDmaGenerator();
    if (!alive) self->closeConn(c);
    return 0;
}

namespace {

constexpr const char* kErrInvalid = "org.tio.Error.InvalidArgument";
constexpr const char* kErrNotFound = "org.tio.Error.NotFound";

PciFunction* functionArg(SimKernel& k, const char* text, sd_bus_error* err, int* r) {
    const auto bdf = Bdf::parse(text);
    if (!bdf) {
        *r = sd_bus_error_set(err, kErrInvalid, "malformed BDF");
        return nullptr;
    }
    PciFunction* fn = k.function(*bdf);
    if (fn == nullptr) *r = sd_bus_error_set(err, kErrNotFound, "no such PCI function");
    return fn;
}

// Reads the call's leading BDF argument and finds the function: null (with *r the
// reply to return) when the message or the BDF is bad.
PciFunction* readFunction(SimKernel& k, sd_bus_message* m, sd_bus_error* err, int* r) {
    const char* bdf = nullptr;
    *r = sd_bus_message_read(m, "s", &bdf);
    if (*r < 0) return nullptr;
    return functionArg(k, bdf, err, r);
}

int methodDma(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    auto& k = *static_cast<SimKernel*>(userdata);
    const char* bdf = nullptr;
    std::uint64_t iova = 0;
    std::uint64_t size = 0;
    int write = 0;
    int r = sd_bus_message_read(m, "sttb", &bdf, &iova, &size, &write);
    if (r < 0) return r;
    if (functionArg(k, bdf, err, &r) == nullptr) return r;
    const std::string outcome = k.dma(*Bdf::parse(bdf), iova, size, write != 0);
    return sd_bus_reply_method_return(m, "s", outcome.c_str());
}

int replyCounts(sd_bus_message* m, const std::map<std::string, std::uint64_t>& counts) {
    sd_bus_message* reply = nullptr;
    int r = sd_bus_message_new_method_return(m, &reply);
    if (r >= 0) r = sd_bus_message_open_container(reply, 'a', "{st}");
    for (const auto& [name, value] : counts) {
        if (r >= 0) r = sd_bus_message_append(reply, "{st}", name.c_str(), value);
    }
    if (r >= 0) r = sd_bus_message_close_container(reply);
    if (r >= 0) r = sd_bus_send(nullptr, reply, nullptr);
    sd_bus_message_unref(reply);
    return r;
}

int methodCounters(sd_bus_message* m, void* userdata, sd_bus_error*) {
    return replyCounts(m, static_cast<SimKernel*>(userdata)->counters());
}

int methodAudit(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    auto& k = *static_cast<SimKernel*>(userdata);
    int r = 0;
    PciFunction* fn = readFunction(k, m, err, &r);
    if (fn == nullptr) return r;
    return replyCounts(m, k.audit(fn->bdf));
}

int methodLayout(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    auto& k = *static_cast<SimKernel*>(userdata);
    int r = 0;
    PciFunction* fn = readFunction(k, m, err, &r);
    if (fn == nullptr) return r;
    return sd_bus_reply_method_return(m, "s", k.layout(fn->bdf).c_str());
}

int methodSetDmaGenerator(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    auto& k = *static_cast<SimKernel*>(userdata);
    int r = 0;
    PciFunction* fn = readFunction(k, m, err, &r);
    if (fn == nullptr) return r;
    std::uint32_t per_call = 0;
    std::uint64_t seed = 0;
    r = sd_bus_message_read(m, "ut", &per_call, &seed);
    if (r < 0) return r;
    if (per_call > 4096) return sd_bus_error_set(err, kErrInvalid, "per_call is at most 4096");
    k.setDmaGenerator(fn->bdf, per_call, seed);
    return sd_bus_reply_method_return(m, "");
}

int methodTakeDmaFaults(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto& k = *static_cast<SimKernel*>(userdata);
    sd_bus_message* reply = nullptr;
    int r = sd_bus_message_new_method_return(m, &reply);
    if (r >= 0) r = sd_bus_message_open_container(reply, 'a', "(ts)");
    for (const auto& f : k.takeDmaFaults()) {
        if (r >= 0) r = sd_bus_message_append(reply, "(ts)", f.gpa, f.outcome.c_str());
    }
    if (r >= 0) r = sd_bus_message_close_container(reply);
    if (r >= 0) r = sd_bus_send(nullptr, reply, nullptr);
    sd_bus_message_unref(reply);
    return r;
}

int methodConfigWrite(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    auto& k = *static_cast<SimKernel*>(userdata);
    int r = 0;
    PciFunction* fn = readFunction(k, m, err, &r);
    if (fn == nullptr) return r;
    k.configWrite(*fn);
    return sd_bus_reply_method_return(m, "");
}

int methodInjectFailure(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    auto& k = *static_cast<SimKernel*>(userdata);
    const char* op = nullptr;
    std::uint32_t nth = 0;
    const char* name = nullptr;
    int r = sd_bus_message_read(m, "sus", &op, &nth, &name);
    if (r < 0) return r;
    const int e = kernel::errnoFromName(name);
    const std::string_view o = op;
    const bool known_op = o == "*" || o == "OPEN" || o == "FALLOCATE" || o == "SYSFS_READ" || o == "SYSFS_WRITE" ||
                          o == "SYSFS_LIST" || o == "SYSFS_READLINK" || kernel::findIoctl(o) != nullptr;
    if (e == 0 || nth == 0 || !known_op) return sd_bus_error_set(err, kErrInvalid, "unknown op or errno, or nth 0");
    k.injectFailure(op, nth, e);
    return sd_bus_reply_method_return(m, "");
}

int methodTdiState(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    auto& k = *static_cast<SimKernel*>(userdata);
    int r = 0;
    PciFunction* fn = readFunction(k, m, err, &r);
    if (fn == nullptr) return r;
    const std::string state = fn->tdisp ? std::string(toString(fn->tdi)) : "unsupported";
    return sd_bus_reply_method_return(m, "s", state.c_str());
}

const sd_bus_vtable kSimVtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD_WITH_NAMES("Dma", "sttb", SD_BUS_PARAM(bdf) SD_BUS_PARAM(iova) SD_BUS_PARAM(size) SD_BUS_PARAM(write),
                             "s", SD_BUS_PARAM(outcome), methodDma, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("Counters", "", , "a{st}", SD_BUS_PARAM(counters), methodCounters,
                             SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("ConfigWrite", "s", SD_BUS_PARAM(bdf), "", , methodConfigWrite,
                             SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("InjectFailure", "sus", SD_BUS_PARAM(op) SD_BUS_PARAM(nth) SD_BUS_PARAM(errno_name), "", ,
                             methodInjectFailure, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("TdiState", "s", SD_BUS_PARAM(bdf), "s", SD_BUS_PARAM(state), methodTdiState,
                             SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("Audit", "s", SD_BUS_PARAM(bdf), "a{st}", SD_BUS_PARAM(findings), methodAudit,
                             SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("Layout", "s", SD_BUS_PARAM(bdf), "s", SD_BUS_PARAM(layout), methodLayout,
                             SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("SetDmaGenerator", "sut", SD_BUS_PARAM(bdf) SD_BUS_PARAM(per_call) SD_BUS_PARAM(seed), "",
                             , methodSetDmaGenerator, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("TakeDmaFaults", "", , "a(ts)", SD_BUS_PARAM(faults), methodTakeDmaFaults,
                             SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_VTABLE_END,
};

}  // namespace

int SimServer::setupControl(sd_bus* bus) {
    // Every question to the oracle first takes in the closes that came before it.
    sd_bus_add_filter(
        bus, nullptr,
        [](sd_bus_message*, void* self, sd_bus_error*) {
            static_cast<SimServer*>(self)->settle();
            return 0;
        },
        this);
    return sd_bus_add_object_vtable(bus, nullptr, "/org/tio/Sim1", "org.tio.Sim1", kSimVtable, &kernel_);
}

}  // namespace tio::sim
