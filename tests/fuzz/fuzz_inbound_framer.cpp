// What a p2p D-Bus client sends, cut by bus::InboundFramer. The input is a series of
// reads: [length byte][fd count byte][length bytes], each read bringing 0..3 fds.
#include <fcntl.h>

#include <cstdint>
#include <cstdlib>
#include <vector>

#include "bus/inbound_framer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using tio::bus::Frame;
    static const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    tio::bus::InboundFramer framer;
    std::size_t pos = 0;
    while (pos + 2 <= size) {
        const std::size_t len = std::min<std::size_t>(data[pos], size - pos - 2);
        const int nfds = data[pos + 1] % 4;
        pos += 2;
        std::vector<tio::UniqueFd> fds;
        for (int i = 0; i < nfds; ++i) fds.emplace_back(::fcntl(null_fd, F_DUPFD_CLOEXEC, 3));
        const auto fed = framer.feed({reinterpret_cast<const char*>(data + pos), len}, std::move(fds));
        pos += len;
        while (framer.hasFrame()) {
            const Frame f = framer.next();
            // Invariants: auth frames carry no fds; a message is bounded and carries at
            // most what one message may.
            if (f.kind == Frame::Kind::Auth && !f.fds.empty()) std::abort();
            if (f.bytes.size() > tio::bus::kMaxMessageBytes || f.fds.size() > tio::bus::kMaxPendingFds) std::abort();
        }
        if (!fed) break;
    }
    return 0;
}
