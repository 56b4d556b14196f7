#include "support/sim_process.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <sdbus-c++/sdbus-c++.h>

#include <stdexcept>

#include "support/process.hpp"
#include "tio/Sim1-proxy.h"

namespace tio::test {

class SimControl final : public sdbus::ProxyInterfaces<org::tio::Sim1_proxy> {
public:
    SimControl(sdbus::IConnection& conn, std::string path) : ProxyInterfaces(conn, "org.tio.Sim1", std::move(path)) {
        registerProxy();
    }
    ~SimControl() { unregisterProxy(); }
};

SimProcess::SimProcess(std::string platform, std::vector<std::string> devices, std::string profile)
    : platform_(platform) {
    control_socket_ = dir() + "/sim.ctl";
    kernel_socket_ = dir() + "/sim.kernel";
    std::vector<std::string> args = {TIO_SIMKERNEL_PATH, "--platform",       platform,
                                     "--control",        control_socket_,    "--kernel",
                                     kernel_socket_,     "--kernel-profile", profile};
    for (const auto& d : devices) {
        if (!d.starts_with("--")) args.emplace_back("--device");
        args.push_back(d);
    }
    pid_ = spawnProcess(std::move(args));
    // The simulator renames each socket into place once it listens (kernel socket
    // first, control door last): the control path existing means both accept.
    waitForPath(control_socket_, "tio-simkernel");
}

void SimProcess::kill9() {
    control_.reset();
    connection_.reset();
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
}

SimProcess::~SimProcess() {
    control_.reset();
    connection_.reset();
    if (pid_ > 0) {
        ::kill(pid_, SIGTERM);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        // The simulator exits 0 on SIGTERM after releasing every file; anything else
        // (a sanitizer report, a crash, a leak at exit) fails the test that used it.
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            ADD_FAILURE() << "tio-simkernel did not exit cleanly (status " << status << ")";
        }
    }
}

std::unique_ptr<kernel::SimSyscalls> SimProcess::connect() const {
    auto s = kernel::SimSyscalls::connect(kernel_socket_);
    if (!s) throw std::runtime_error("cannot connect to tio-simkernel");
    return std::move(*s);
}

SimControl& SimProcess::control() {
    if (!control_) {
        // sdbus-c++ 1.2 sends Hello on p2p, which the simulator's shim answers.
        connection_ = sdbus::createSessionBusConnectionWithAddress("unix:path=" + control_socket_);
        control_ = std::make_unique<SimControl>(*connection_, "/org/tio/Sim1");
    }
    return *control_;
}

std::map<std::string, std::uint64_t> SimProcess::counters() { return control().Counters(); }

std::uint64_t SimProcess::counter(const std::string& name) {
    const auto c = counters();
    auto it = c.find(name);
    if (it == c.end()) throw std::runtime_error("no counter " + name);
    return it->second;
}

std::string SimProcess::dma(const std::string& bdf, std::uint64_t iova, std::uint64_t size, bool write) {
    return control().Dma(bdf, iova, size, write);
}

void SimProcess::configWrite(const std::string& bdf) { control().ConfigWrite(bdf); }

void SimProcess::injectFailure(const std::string& op, std::uint32_t nth, const std::string& errno_name) {
    control().InjectFailure(op, nth, errno_name);
}

std::string SimProcess::tdiState(const std::string& bdf) { return control().TdiState(bdf); }

std::map<std::string, std::uint64_t> SimProcess::audit(const std::string& bdf) { return control().Audit(bdf); }

std::string SimProcess::layout(const std::string& bdf) { return control().Layout(bdf); }

void SimProcess::setDmaGenerator(const std::string& bdf, std::uint32_t per_call, std::uint64_t seed) {
    control().SetDmaGenerator(bdf, per_call, seed);
}

std::vector<SimProcess::DmaFault> SimProcess::takeDmaFaults() {
    std::vector<DmaFault> out;
    for (const auto& f : control().TakeDmaFaults()) out.push_back({f.get<0>(), f.get<1>()});
    return out;
}

}  // namespace tio::test
