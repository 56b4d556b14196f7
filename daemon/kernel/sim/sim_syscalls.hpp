#pragma once
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <random>

#include "kernel/ioctl_table.hpp"
#include "kernel/linux_syscalls.hpp"
#include "kernel/sim/sim_wire.hpp"

namespace tio::kernel {

// The simulated kernel's implementation of the boundary: device nodes, sysfs and
// ioctls on simulator files go to tio-simkernel over its kernel socket, with the
// exact uAPI struct bytes (ioctl_table.hpp says how to read them). Fds that are not
// simulator files (a real memfd, a pipe a client passed) go to the real kernel,
// which answers for them as it would on Linux.
// An ioctl out-buffer as the caller set it up: where its bytes go, and how many.
struct OutBuffer {
    std::uint8_t* dst = nullptr;
    std::uint32_t len = 0;
};

// Copies the simulator's answer `reply` to an ioctl back as the kernel would: the
// struct into `user_struct`, then each out-buffer into `outs` (the caller's pointers
// and lengths, taken before the call: a reply cannot redirect or lengthen a copy),
// and the fd it returns. The ioctl's return value, or the errno it failed with
// (EPROTO: a reply that does not fit).
[[nodiscard]] SysResult<long> applyIoctlReply(const IoctlDesc& desc, std::span<std::uint8_t> user_struct,
                                              std::span<const OutBuffer> outs, wire::Message& reply);

class SimSyscalls final : public Syscalls {
public:
    [[nodiscard]] static SysResult<std::unique_ptr<SimSyscalls>> connect(const std::string& socket_path);

    SysResult<UniqueFd> open(const std::string& path, int flags) override;
    SysResult<long> ioctl(int fd, unsigned long request, unsigned long arg) override;
    SysResult<> fallocate(int fd, int mode, std::uint64_t offset, std::uint64_t length) override;
    SysResult<std::string> readAttribute(const std::string& path) override;
    SysResult<std::string> readLink(const std::string& path) override;
    SysResult<> writeAttribute(const std::string& path, const std::string& value) override;
    SysResult<std::vector<std::string>> listDirectory(const std::string& path) override;
    SysResult<FdIdentity> identify(int fd) override;
    // A simulator file's pages come as a memfd the simulator holds them in, mapped
    // here: what the process maps is that memfd, as /proc/PID/maps then says, so the
    // simulator can resolve an address the way GUP does.
    SysResult<SharedMapping> mapShared(int fd, std::uint64_t offset, std::uint64_t length) override;

    // True when `fd` is a file description served by this simulator: a SEQPACKET
    // socket whose peer (checked by the kernel, SO_PEERCRED) is the simulator process.
    [[nodiscard]] bool isSimFile(int fd) const;
    [[nodiscard]] pid_t simulatorPid() const noexcept { return sim_pid_; }
    // The socket to the simulator's broker: it hangs up when the simulator is gone.
    [[nodiscard]] int brokerFd() const noexcept { return broker_.get(); }
    // How long a call waits for the simulator's answer before it fails with
    // ETIMEDOUT: a hung kernel must not hold the daemon (its watchdog, its other
    // clients). A late answer is dropped when it comes (its seq is stale). Until it
    // comes, every call fails with ETIMEDOUT at once: the simulator serves one call
    // at a time, so none would be answered sooner.
    void setCallTimeout(std::chrono::milliseconds timeout) { call_timeout_ = timeout; }
    static constexpr std::chrono::milliseconds kDefaultCallTimeout{5000};

private:
    SimSyscalls(UniqueFd broker, pid_t sim_pid)
        : broker_(std::move(broker)), sim_pid_(sim_pid), seq_(std::random_device{}()) {
        seq_ = (seq_ << 32U) ^ std::random_device{}();
    }

    SysResult<wire::Message> call(int sock, const wire::Request& req, std::span<const std::uint8_t> payload,
                                  std::span<const int> fds);
    SysResult<long> simIoctl(int fd, unsigned long request, unsigned long arg);
    // A broker request whose answer is text (an attribute, a link's target).
    SysResult<std::string> readText(wire::Op op, const std::string& path);

    UniqueFd broker_;  // connection for open/sysfs (calls not tied to an open file)
    pid_t sim_pid_;
    std::chrono::milliseconds call_timeout_ = kDefaultCallTimeout;
    UniqueFd hung_;      // a duplicate of the socket of a call that timed out, until its answer comes
    std::uint64_t seq_;  // request numbers start at random: a restarted daemon's never meet its predecessor's
    LinuxSyscalls host_;
};

}  // namespace tio::kernel
