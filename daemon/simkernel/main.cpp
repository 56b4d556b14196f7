// tio-simkernel: the simulated kernel (architecture.md section 4). Wiring only.
#include <signal.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <systemd/sd-id128.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "simkernel/sim_server.hpp"

namespace {

void usage() {
    std::fprintf(stderr,
                 "usage: tio-simkernel --platform tdx|snp|cca --control PATH [--kernel PATH]\n"
                 "                     [--kernel-profile 7.3|7.4|proposed] [--devsec-tsm]\n"
                 "                     [--device BDF[,notdisp][,ide-only][,vf-of=PF][,vf-token=UUID]\n"
                 "                                [,behind=PORT]]...\n"
                 "  --kernel-profile picks the uAPI the simulated kernel has (default: proposed).\n"
                 "  --devsec-tsm lists a devsec TSM (tsm0) before the link TSM (tsm1).\n"
                 "  A device is TDISP capable unless notdisp; ide-only is a PF0 with IDE but no\n"
                 "  TEE-IO; vf-of makes it a VF of PF (its DSM is the PF's function 0); vf-token\n"
                 "  on a PF is the token its VFs' users must show; behind puts it below a switch\n"
                 "  upstream port PORT (listed as a device too), its DSM.\n"
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
    bool devsec_tsm = false;
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
            // BDF[,notdisp][,ide-only][,vf-of=PF][,vf-token=UUID][,behind=PORT]
            std::string spec = argv[++i];
            sim::PciFunction fn{.vfio_index = static_cast<unsigned>(functions.size())};
            std::string options;
            if (const auto comma = spec.find(','); comma != std::string::npos) {
                options = spec.substr(comma + 1);
                spec.resize(comma);
            }
            bool ok = true;
            for (std::size_t at = 0; ok && at < options.size();) {
                const auto end = std::min(options.find(',', at), options.size());
                const std::string o = options.substr(at, end - at);
                at = end + 1;
                if (o == "notdisp") fn.tdisp = false;
                else if (o == "ide-only") fn.tdisp = false, fn.ide_only = true;
                else if (o.starts_with("vf-of=") && Bdf::parse(o.substr(6))) fn.physfn = Bdf::parse(o.substr(6));
                else if (o.starts_with("behind=") && Bdf::parse(o.substr(7))) fn.behind = Bdf::parse(o.substr(7));
                else if (sd_id128_t id; o.starts_with("vf-token=") && sd_id128_from_string(o.c_str() + 9, &id) >= 0)
                    fn.vf_token = std::to_array(id.bytes);
                else ok = false;
            }
            const auto bdf = Bdf::parse(spec);
            if (!ok || !bdf) {
                std::fprintf(stderr, "tio-simkernel: malformed device '%s'\n", argv[i]);
                return 2;
            }
            fn.bdf = *bdf;
            functions.push_back(fn);
        } else if (a == "--devsec-tsm") {
            devsec_tsm = true;
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
    if (devsec_tsm) kernel.addDevsecTsmFirst();
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
