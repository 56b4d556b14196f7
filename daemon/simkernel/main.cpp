// tio-simkernel: the simulated kernel (architecture.md section 4). Wiring only.
#include <signal.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "simkernel/sim_server.hpp"

namespace {

void usage() {
    std::fprintf(stderr,
                 "usage: tio-simkernel --platform tdx|snp|cca --control PATH [--kernel PATH]\n"
                 "                     [--kernel-profile 7.3|7.4|proposed] [--device BDF[,notdisp]]...\n"
                 "  --kernel-profile picks the uAPI the simulated kernel has (default: proposed).\n"
                 "  --kernel defaults to the control path with \".kernel\" appended.\n"
                 "  Default devices: 0000:3a:00.0 and 0000:3b:00.0, both TDISP capable.\n");
}

}  // namespace

int main(int argc, char** argv) {
    using namespace tio;
    std::optional<Platform> platform;
    std::string control;
    std::string kernel_path;
    sim::KernelProfile profile = sim::KernelProfile::Proposed;
    std::vector<sim::PciFunction> functions;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const bool has_value = i + 1 < argc;
        if (a == "--platform" && has_value) {
            platform = parsePlatform(argv[++i]);
            if (!platform) {
                std::fprintf(stderr, "tio-simkernel: unknown platform '%s'\n", argv[i]);
                return 2;
            }
        } else if (a == "--control" && has_value) {
            control = argv[++i];
        } else if (a == "--kernel" && has_value) {
            kernel_path = argv[++i];
        } else if (a == "--kernel-profile" && has_value) {
            const auto p = sim::parseKernelProfile(argv[++i]);
            if (!p) {
                std::fprintf(stderr, "tio-simkernel: unknown kernel profile '%s' (7.3, 7.4 or proposed)\n", argv[i]);
                return 2;
            }
            profile = *p;
        } else if (a == "--device" && has_value) {
            std::string spec = argv[++i];
            bool tdisp = true;
            if (const auto comma = spec.find(','); comma != std::string::npos) {
                if (spec.substr(comma + 1) != "notdisp") {
                    std::fprintf(stderr, "tio-simkernel: unknown device option in '%s'\n", spec.c_str());
                    return 2;
                }
                tdisp = false;
                spec.resize(comma);
            }
            const auto bdf = Bdf::parse(spec);
            if (!bdf) {
                std::fprintf(stderr, "tio-simkernel: malformed BDF '%s'\n", spec.c_str());
                return 2;
            }
            functions.push_back({.bdf = *bdf, .tdisp = tdisp, .vfio_index = static_cast<unsigned>(functions.size())});
        } else {
            usage();
            return 2;
        }
    }
    if (!platform || control.empty()) {
        usage();
        return 2;
    }
    if (kernel_path.empty()) kernel_path = control + ".kernel";
    if (functions.empty()) {
        functions.push_back({.bdf = *Bdf::parse("0000:3a:00.0"), .vfio_index = 0});
        functions.push_back({.bdf = *Bdf::parse("0000:3b:00.0"), .vfio_index = 1});
    }

    sd_event* event = nullptr;
    if (sd_event_default(&event) < 0) return 1;
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    sd_event_add_signal(event, nullptr, SIGTERM, nullptr, nullptr);  // NULL handler: exit the loop
    sd_event_add_signal(event, nullptr, SIGINT, nullptr, nullptr);
    signal(SIGPIPE, SIG_IGN);

    sim::SimKernel kernel(*platform, profile, std::move(functions));
    sim::SimServer server(event, kernel);
    if (const int r = server.listen(kernel_path, control); r < 0) {
        std::fprintf(stderr, "tio-simkernel: cannot listen: %s\n", std::strerror(-r));
        return 1;
    }
    sd_notify(0, "READY=1\nSTATUS=simulating");
    const int r = sd_event_loop(event);
    sd_event_unref(event);
    return r < 0 ? 1 : 0;
}
