#pragma once
// tio-simkernel's model: the simulated files, PCI functions with their TDISP state,
// the platform, counters, and fail-nth injection. Single-threaded (one sd-event loop).
#include <sys/types.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "common/bdf.hpp"
#include "common/platform.hpp"
#include "kernel/sim/sim_wire.hpp"
#include "simkernel/sim_file.hpp"

namespace tio::sim {

enum class TdiState : std::uint8_t { Unlocked, Locked, Run, Error };

// Which uAPI the simulated kernel has (architecture.md section 4; the matrix in
// kernel-as-it-is.md section 7): merged only, plus in-place guest_memfd conversion,
// or plus the proposed series (guest_memfd in MAP_FILE, the TSM, IOAS_RESHAPE).
enum class KernelProfile : std::uint8_t { V7_3, V7_4, Proposed };
[[nodiscard]] std::optional<KernelProfile> parseKernelProfile(std::string_view s);
[[nodiscard]] std::string_view toString(KernelProfile p);
[[nodiscard]] std::string_view toString(TdiState s);

class VfioDeviceFile;
class IommufdFile;
class KvmVmFile;
class GuestMemfdFile;

// A PCI function of the simulated host, always bound to vfio-pci.
struct PciFunction {
    Bdf bdf;
    bool tdisp = true;          // has the TEE capability (TDISP)
    bool ide_only = false;      // a PF0 with IDE but no TEE-IO: a tsm/ group without `bound`
    std::optional<Bdf> physfn;  // a VF's PF (sysfs physfn)
    std::optional<Bdf> behind;  // the switch upstream port above it (the DSM of its function 0)
    std::optional<std::array<std::uint8_t, 16>> vf_token;  // a PF's VF token, when its driver set one
    unsigned vfio_index = 0;                               // /dev/vfio/devices/vfioN
    bool tsm_connected = false;                            // meaningful on function 0 (the DSM)
    TdiState tdi = TdiState::Unlocked;
    bool tsm_bound = false;  // the TSM holds a device context (a vDEVICE on a TSM vIOMMU)
    // Evidence generations (certificates, measurements, interface report): LOCK,
    // a reset and REGENERATE advance them, and with them the objects' bytes.
    std::array<std::uint64_t, 3> evidence_generation{1, 1, 1};
    bool sev_dma = false;             // SEV: the guest enabled the TDI's trusted DMA
    VfioDeviceFile* bound = nullptr;  // the cdev file bound to an iommufd, if any
};

inline constexpr unsigned kVfioMajor = 243;  // simulated char major for vfio cdevs

class SimKernel {
public:
    // How long an ioctl failed with ETIMEDOUT (InjectFailure) hangs before it answers.
    static constexpr unsigned kHangMicroseconds = 1'000'000;
    SimKernel(Platform platform, KernelProfile profile, std::vector<PciFunction> functions);
    ~SimKernel();

    [[nodiscard]] Platform platform() const { return platform_; }
    [[nodiscard]] KernelProfile profile() const { return profile_; }
    // KVM_SET_MEMORY_ATTRIBUTES2 on guest_memfd (7.4 and later): attributes live with
    // the file, and the VM-scoped attribute is gone (kvm.gmem_in_place_conversion=1).
    [[nodiscard]] bool inPlaceConversion() const { return profile_ != KernelProfile::V7_3; }
    // The guest_memfd MAP_FILE RFC (and the rest of the proposed series).
    [[nodiscard]] bool proposedSeries() const { return profile_ == KernelProfile::Proposed; }

    // Serves one request that arrived on `sock`; `file` is null for the broker socket.
    // Returns false when the reply could not be sent.
    bool serve(int sock, SimFile* file, kernel::wire::Message msg);

    // A new file for userspace: creates the socketpair, registers the client end's
    // inode, returns the client end (to send back) and the server end (to poll).
    struct NewFile {
        UniqueFd client;
        UniqueFd server;
        SimFile* file = nullptr;
    };
    [[nodiscard]] kernel::SysResult<NewFile> install(std::unique_ptr<SimFile> file);
    // Called by the event loop for the server end of each NewFile.
    using Watcher = void (*)(void* ctx, int server_fd, SimFile* file);
    void setWatcher(Watcher w, void* ctx) {
        watcher_ = w;
        watcher_ctx_ = ctx;
    }
    // Userspace closed the last fd of `file`.
    void closedByUser(SimFile* file);

    // Resolves an fd received over SCM_RIGHTS to the simulator file it is, or null.
    [[nodiscard]] SimFile* resolve(int fd) const;
    // The guest_memfd whose pages live in the file (dev, ino), or null.
    [[nodiscard]] GuestMemfdFile* guestMemfdBackedBy(dev_t dev, ino_t ino) const;
    void destroyFile(SimFile* file);

    [[nodiscard]] PciFunction* function(const Bdf& bdf);
    // The function's device security manager (drivers/pci/tsm.c): function 0 of its
    // PF for a VF, function 0 of its own slot otherwise, or the switch upstream port
    // above that function 0.
    [[nodiscard]] Bdf dsmOf(const PciFunction& fn);
    // Whether the function's tsm/ group is visible: on a DSM once a link TSM
    // registered (also IDE-only); on a VF or another function only once its DSM is
    // connected.
    [[nodiscard]] bool tsmGroupVisible(const PciFunction& fn);
    // vfio_pci_validate_vf_token: 0, or the negative errno binding `fn` with `token`
    // (null without VFIO_DEVICE_BIND_FLAG_TOKEN) gets.
    [[nodiscard]] int checkVfToken(const PciFunction& fn, const std::vector<std::uint8_t>* token);
    // The platform TSMs (/sys/class/tsm) and whether each is a link TSM (a devsec
    // TSM refuses connect with ENXIO).
    [[nodiscard]] const std::vector<std::pair<std::string, bool>>& tsms() const { return tsms_; }
    void addDevsecTsmFirst() { tsms_ = {{"tsm0", false}, {"tsm1", true}}; }
    [[nodiscard]] PciFunction* functionByVfioIndex(unsigned index);
    [[nodiscard]] std::vector<PciFunction>& functions() { return functions_; }

    // Counters (the test oracle).
    void count(const std::string& name, std::uint64_t n = 1) { counters_[name] += n; }
    [[nodiscard]] std::map<std::string, std::uint64_t> counters() const;
    void registerObjects(long delta) { objects_ = static_cast<std::uint64_t>(static_cast<long>(objects_) + delta); }

    // fail-nth: the nth next call of `op` ("*" = any operation) fails with `err`.
    void injectFailure(std::string op, unsigned nth, int err);
    // 0, or the errno to fail this call of `op` with.
    [[nodiscard]] int shouldFail(std::string_view op);

    template <typename F>
    void forEachIommufd(F&& f) {
        for (auto& [ptr, file] : files_)
            if (auto* ictx = asIommufd(ptr)) f(*ictx);
    }

    // Device side events. dma() walks the function's page table and applies the
    // platform's rules (sim_platform.cpp); the outcome is a string of the Sim1 contract.
    [[nodiscard]] std::string dma(const Bdf& bdf, std::uint64_t iova, std::uint64_t size, bool write);
    // The platform's shared-alias bit in IOVAs (TDX shared GPA bit, CCA unprotected
    // IPA bit); 0 on SNP, where shared and private are both at their GPA.
    [[nodiscard]] std::uint64_t sharedAliasBit() const;

    // The background DMA generator: after every served call (and on a timer), `per_call`
    // DMAs to random pages of the function's guest memory, each by the path its page's
    // state calls for. Outcomes other than "ok" are recorded with the page's GPA.
    struct DmaFault {
        std::uint64_t gpa = 0;
        std::string outcome;
    };
    void setDmaGenerator(const Bdf& bdf, unsigned per_call, std::uint64_t seed);
    void runDmaGenerator();
    [[nodiscard]] std::vector<DmaFault> takeDmaFaults();

    // The structural oracle: compares the function's page table with the layout the
    // platform's rules derive from its VM's memory state, and counts every rule broken.
    [[nodiscard]] std::map<std::string, std::uint64_t> audit(const Bdf& bdf);
    // A text rendering of the function's page table and its VM's private ranges, for
    // "nothing changed" comparisons.
    [[nodiscard]] std::string layout(const Bdf& bdf);
    // A host config-space write: breaks a locked/running TDI (TDISP: -> ERROR).
    void configWrite(PciFunction& fn);
    void setTdi(PciFunction& fn, TdiState to);
    // Ends the TSM's device context of `fn` (vDEVICE destroyed, DSM disconnected).
    void unbindTdi(PciFunction& fn);
    // The TSM's evidence object `object` (tsm_object) of `fn` at its generation.
    [[nodiscard]] std::vector<std::uint8_t> evidence(const PciFunction& fn, std::uint32_t object) const;

private:
    void serveBroker(int sock, const kernel::wire::Request& rq, std::span<const std::uint8_t> payload);
    void serveIoctl(int sock, SimFile& file, const kernel::wire::Request& rq, kernel::wire::Message& msg);
    bool reply(int sock, int err, std::int64_t ret, std::span<const std::uint8_t> payload = {}, int fd = -1,
               std::uint64_t a = 0);
    kernel::SysResult<std::string> readAttr(const std::string& path);
    int writeAttr(const std::string& path, const std::string& raw);
    kernel::SysResult<std::vector<std::string>> listDir(const std::string& path);
    kernel::SysResult<std::string> readLink(const std::string& path);
    kernel::SysResult<std::unique_ptr<SimFile>> openNode(const std::string& path);
    static IommufdFile* asIommufd(SimFile* f);
    std::string accessPage(PciFunction& fn, std::uint64_t iova, bool write, std::uint64_t& next);

    Platform platform_;
    KernelProfile profile_;
    std::vector<PciFunction> functions_;
    std::vector<std::pair<std::string, bool>> tsms_{{"tsm0", true}};
    std::map<ino_t, SimFile*> by_inode_;
    std::map<SimFile*, std::unique_ptr<SimFile>> files_;
    std::map<SimFile*, ino_t> inode_of_;
    std::map<std::string, std::uint64_t> counters_;
    std::uint64_t objects_ = 0;
    struct PendingFailure {
        std::string op;
        unsigned countdown;
        int err;
    };
    std::vector<PendingFailure> pending_;
    Watcher watcher_ = nullptr;
    void* watcher_ctx_ = nullptr;
    bool sent_ok_ = true;
    std::uint64_t current_seq_ = 0;  // of the request being served, echoed in its reply
    struct Generator {
        Bdf bdf;
        unsigned per_call = 0;
        std::mt19937_64 rng;
        bool running = false;  // not re-entered from its own DMAs
    };
    Generator generator_;
    std::vector<DmaFault> dma_faults_;
};

}  // namespace tio::sim
