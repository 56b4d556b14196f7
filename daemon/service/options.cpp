#include "service/options.hpp"

#include <charconv>
#include <cstdio>
#include <cstdlib>

namespace tio::service {
namespace {

void usage() {
    std::fprintf(stderr,
                 "usage: tio-managerd --guest NAME [--platform tdx|snp|cca|sim-tdx|sim-snp|sim-cca]\n"
                 "                    [--sim-socket PATH] [--listen PATH] [--policy FILE]\n"
                 "                    [--claim-dir DIR] [--state-dir DIR] [--no-system-bus]\n"
                 "                    [--max-connections N] [--max-connections-per-uid N]\n"
                 "                    [--max-queued-messages N]\n"
                 "  Without --listen the guest socket comes from socket activation (LISTEN_FDS).\n"
                 "  Without --policy the guest belongs to the invoking user and may claim any device.\n"
                 "  Without --platform the guest's platform in the policy is used.\n");
}

}  // namespace

std::optional<Options> parseOptions(int argc, char** argv) {
    Options o;
    bool ok = true;
    for (int i = 1; ok && i < argc; ++i) {
        const std::string k = argv[i];
        auto value = [&](std::string& into) {
            if (i + 1 >= argc) return false;
            into = argv[++i];
            return true;
        };
        auto count = [&](std::size_t& into) {
            std::string v;
            if (!value(v)) return false;
            const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), into);
            return ec == std::errc() && end == v.data() + v.size() && into > 0;
        };
        if (k == "--guest") ok = value(o.guest);
        else if (k == "--platform") ok = value(o.target);
        else if (k == "--sim-socket") ok = value(o.sim_socket);
        else if (k == "--listen") ok = value(o.listen);
        else if (k == "--policy") ok = value(o.policy);
        else if (k == "--claim-dir") ok = value(o.claim_dir);
        else if (k == "--state-dir") ok = value(o.state_dir);
        else if (k == "--no-system-bus") o.system_bus = false;
        else if (k == "--max-connections") ok = count(o.peer_limits.max_connections);
        else if (k == "--max-connections-per-uid") ok = count(o.peer_limits.max_connections_per_uid);
        else if (k == "--max-queued-messages") ok = count(o.peer_limits.max_queued_out);
        else ok = false;
    }
    if (!ok || o.guest.empty()) {
        usage();
        return std::nullopt;
    }
    if (o.state_dir.empty()) {
        if (const char* s = std::getenv("STATE_DIRECTORY")) o.state_dir = s;
    }
    return o;
}

}  // namespace tio::service
