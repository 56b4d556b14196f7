// The simulator's kernel-socket protocol (daemon/simkernel/PROTOCOL.md), both sides.
// The first input byte picks the side:
//  - even: the simulator serves the rest as a request on its broker socket (a fresh
//    simulated kernel per input, so nothing carries over);
//  - odd: the daemon takes the rest as the answer to an ioctl: the next byte picks
//    the ioctl from the table, then come the caller's struct and the reply.
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <vector>

#include "kernel/ioctl_table.hpp"
#include "kernel/sim/sim_syscalls.hpp"
#include "kernel/uapi/ioctl_encoding.hpp"
#include "simkernel/sim_kernel.hpp"

namespace {

void serveRequest(const std::uint8_t* data, std::size_t size) {
    std::array<int, 2> pair{};
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair.data()) < 0) return;
    const tio::UniqueFd ours(pair[0]);
    const tio::UniqueFd theirs(pair[1]);
    tio::kernel::wire::Message msg;
    msg.bytes.assign(data, data + size);
    std::vector<tio::sim::PciFunction> functions(1);
    functions[0].bdf = *tio::Bdf::parse("0000:3a:00.0");
    tio::sim::SimKernel kernel(tio::Platform::Tdx, tio::sim::KernelProfile::Proposed, std::move(functions));
    (void)kernel.serve(ours.get(), nullptr, std::move(msg));
}

void takeReply(const std::uint8_t* data, std::size_t size) {
    const auto table = tio::kernel::allIoctls();
    if (size == 0 || table.empty()) return;
    const tio::kernel::IoctlDesc& desc = table[data[0] % table.size()];
    ++data;
    --size;
    std::vector<std::uint8_t> user;
    if (desc.kind == tio::kernel::ArgKind::Struct) {
        user.assign(tio::uapi::iocSize(desc.request), 0);
        const std::size_t n = std::min(user.size(), size);
        std::copy(data, data + n, user.begin());
        data += n;
        size -= n;
    }
    // The caller's out-buffers, as long as its struct says (within the table's bound).
    std::vector<std::vector<std::uint8_t>> buffers;
    std::vector<tio::kernel::OutBuffer> outs;
    for (const auto& p : desc.pointers) {
        if (p.ptr_offset == tio::kernel::kNoField || p.dir == tio::kernel::Direction::In ||
            p.ptr_offset + 8U > user.size()) {
            continue;
        }
        const auto len = tio::kernel::pointerLength(p, user);
        if (!len) return;  // the caller would have been refused before any call
        buffers.emplace_back(*len);
        outs.push_back({buffers.back().data(), *len});
    }
    tio::kernel::wire::Message reply;
    reply.bytes.assign(data, data + size);
    (void)tio::kernel::applyIoctlReply(desc, user, outs, reply);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    if (data[0] % 2 == 0) {
        serveRequest(data + 1, size - 1);
    } else {
        takeReply(data + 1, size - 1);
    }
    return 0;
}
