#pragma once
// A core Guest wired to a real tio-simkernel process, with a private claim directory,
// and the VMM's side of the guest in this process (`vmm`).
#include <filesystem>
#include <memory>

#include "core/guest.hpp"
#include "support/eventually.hpp"
#include "support/sim_process.hpp"
#include "support/test_vmm.hpp"
#include "support/trusted_caller.hpp"

namespace tio::test {

inline constexpr std::uint64_t kMiB = 1ULL << 20U;
inline constexpr std::uint64_t kGuestRamGpa = 0x100000000ULL;
inline constexpr const char* kDevA = "0000:3a:00.0";
inline constexpr const char* kDevB = "0000:3b:00.0";
inline constexpr const char* kDevPlain = "0000:3c:00.0";  // no TDISP

inline constexpr const char* kDevVf = "0000:3a:02.0";       // a VF of kDevA (with kPciTopology)
inline constexpr const char* kDevIdeOnly = "0000:5e:00.0";  // a PF0 with IDE but no TEE-IO

// The default functions, and one with a VF, an IDE-only PF0 and a devsec TSM listed
// before the link TSM.
inline std::vector<std::string> defaultFunctions() { return {kDevA, kDevB, std::string(kDevPlain) + ",notdisp"}; }
// The VF token kDevA's driver set for its VFs (pciTopology).
inline constexpr const char* kVfToken = "5f4dcc3b-5aa7-45d8-a1b2-0123456789ab";
inline constexpr const char* kSwitchPort = "0000:10:00.0";       // a switch upstream port, a DSM
inline constexpr const char* kDevBehindSwitch = "0000:12:00.0";  // an endpoint below it
inline std::vector<std::string> pciTopology() {
    return {std::string(kDevA) + ",vf-token=" + kVfToken,
            std::string(kDevVf) + ",vf-of=" + kDevA,
            std::string(kDevIdeOnly) + ",ide-only",
            std::string(kDevPlain) + ",notdisp",
            kSwitchPort,
            std::string(kDevBehindSwitch) + ",behind=" + kSwitchPort,
            "--devsec-tsm"};
}

struct GuestRig {
    explicit GuestRig(std::string platform = "tdx", std::string profile = "proposed",
                      std::vector<std::string> functions = defaultFunctions())
        : sim(platform, std::move(functions), profile),
          sys(sim.connect()),
          claim_dir(sim.dir() + "/claims"),
          vmm(*sys) {
        std::filesystem::create_directory(claim_dir);
        // Open the control connection now, so fd baselines taken after construction
        // already include it.
        (void)sim.counters();
        guest = std::make_unique<core::Guest>(
            core::GuestConfig{.name = "vm1", .platform = *parsePlatform(platform), .claim_dir = claim_dir}, *sys,
            anyDevice("vm1"));
    }
    // Returns once the simulator has handled every release and syscall that was
    // pending when it was called: two round trips on the kernel socket, whose requests
    // share the releases' priority and are served after what was pending before them.
    void settle() {
        for (int i = 0; i < 2; ++i) (void)sys->readAttribute("/sys/module/tio-test/settle");
    }
    // True once the simulator holds no file and no object (bounded wait).
    [[nodiscard]] bool kernelIsEmpty() {
        return eventually([&] { return sim.counter("open_files") == 0 && sim.counter("objects") == 0; });
    }

    SimProcess sim;
    std::unique_ptr<kernel::SimSyscalls> sys;
    std::string claim_dir;
    TestVmm vmm;
    std::unique_ptr<core::Guest> guest;
};

}  // namespace tio::test
