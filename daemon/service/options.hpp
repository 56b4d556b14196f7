#pragma once
// tio-managerd's command line.
#include <optional>
#include <string>

#include "bus/p2p_server.hpp"

namespace tio::service {

struct Options {
    std::string guest;
    std::string target;  // tdx|snp|cca (real kernel) or sim-tdx|sim-snp|sim-cca; empty: the policy's
    std::string sim_socket;
    std::string listen;
    std::string policy;
    std::string claim_dir = "/run/tio-manager/devices";
    std::string state_dir;  // audit records; default $STATE_DIRECTORY (systemd's StateDirectory=)
    bool system_bus = true;
    bus::PeerLimits peer_limits;  // the guest socket's quotas (README, "Security")
};

// nullopt (after printing the usage) when the command line is not one of ours.
[[nodiscard]] std::optional<Options> parseOptions(int argc, char** argv);

}  // namespace tio::service
