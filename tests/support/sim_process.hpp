#pragma once
// A real tio-simkernel process for one test: its own temp directory, kernel socket
// and control door. The control door is reached through the sdbus-c++ proxy
// generated from org.tio.Sim1.xml, exactly as any client would.
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernel/sim/sim_syscalls.hpp"
#include "support/temp_dir.hpp"

namespace sdbus {
class IConnection;
}

namespace tio::test {

class SimControl;

class SimProcess {
public:
    // `devices`: --device arguments ("0000:3a:00.0" or "0000:3c:00.0,notdisp"), and
    // other flags as they are ("--devsec-tsm"); empty means the simulator's defaults.
    // `profile`: --kernel-profile (7.3, 7.4, proposed).
    explicit SimProcess(std::string platform = "tdx", std::vector<std::string> devices = {},
                        std::string profile = "proposed");
    SimProcess(const SimProcess&) = delete;
    SimProcess& operator=(const SimProcess&) = delete;
    ~SimProcess();

    [[nodiscard]] const std::string& dir() const { return dir_.path(); }
    [[nodiscard]] const std::string& platform() const { return platform_; }
    [[nodiscard]] const std::string& kernelSocket() const { return kernel_socket_; }
    [[nodiscard]] const std::string& controlSocket() const { return control_socket_; }
    // A fresh connection to the simulated kernel (the daemon's Linux code path).
    [[nodiscard]] std::unique_ptr<kernel::SimSyscalls> connect() const;

    // Kills the simulator (SIGKILL), as a crash would; the destructor then has nothing to stop.
    void kill9();

    // org.tio.Sim1
    [[nodiscard]] std::map<std::string, std::uint64_t> counters();
    [[nodiscard]] std::uint64_t counter(const std::string& name);
    [[nodiscard]] std::string dma(const std::string& bdf, std::uint64_t iova, std::uint64_t size, bool write);
    void configWrite(const std::string& bdf);
    void injectFailure(const std::string& op, std::uint32_t nth, const std::string& errno_name);
    [[nodiscard]] std::string tdiState(const std::string& bdf);
    [[nodiscard]] std::map<std::string, std::uint64_t> audit(const std::string& bdf);
    [[nodiscard]] std::string layout(const std::string& bdf);
    void setDmaGenerator(const std::string& bdf, std::uint32_t per_call, std::uint64_t seed);
    struct DmaFault {
        std::uint64_t gpa = 0;
        std::string outcome;
    };
    [[nodiscard]] std::vector<DmaFault> takeDmaFaults();

    // Where a device reaches a shared page at `gpa` through the host IOMMU on this
    // simulator's platform: TDX and CCA through the shared alias (bit 47 for the
    // simulated 48-bit guest address width), SNP at the GPA. The tests' own copy of
    // the rule, independent of the daemon's.
    [[nodiscard]] std::uint64_t sharedIova(std::uint64_t gpa) const {
        return platform_ == "snp" ? gpa : gpa | (1ULL << 47U);
    }

private:
    SimControl& control();

    std::string platform_;
    // Removed after the destructor has stopped the simulator; traversable, so tests
    // can run clients as another uid (nobody).
    TempDir dir_{"tio-sim", 0755, "/tmp/"};
    std::string kernel_socket_;
    std::string control_socket_;
    pid_t pid_ = -1;
    std::unique_ptr<sdbus::IConnection> connection_;  // outlives control_
    std::unique_ptr<SimControl> control_;
};

}  // namespace tio::test
