// The TDI through the TSM series (RFC v7) on every platform: the guest's requests
// relayed with their checks, evidence objects whole and of one generation, and
// quarantine whenever a state change's outcome cannot be known. The simulator is
// the oracle for the TDI's real state; fakes in front of it make the TSM's answers
// lie in the ways the kernel allows (a residue beyond the buffer, success with an
// error code).
#include <systemd/sd-id128.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <functional>

#include "kernel/forwarding_syscalls.hpp"
#include "kernel/uapi/iommufd_tsm_proposed.hpp"
#include "support/assert_ok.hpp"
#include "support/bring_up.hpp"
#include "support/guest_rig.hpp"
#include "support/model_of.hpp"
#include "support/trusted_caller.hpp"

namespace tio::test {
namespace {

using core::EvidenceKind;
using core::TdiState;

// A TSM whose answers to one op are rewritten after the kernel gave them.
class LyingTsm final : public kernel::ForwardingSyscalls {
public:
    enum class Lie : std::uint8_t { None, ResidueBeyondBuffer, SuccessWithErrorCode, RegenerateMidRead, HugeObject };
    using ForwardingSyscalls::ForwardingSyscalls;
    Lie lie = Lie::None;
    std::uint32_t op = 0;
    unsigned told = 0;

    kernel::SysResult<long> ioctl(int fd, unsigned long req, unsigned long arg) override {
        auto r = inner().ioctl(fd, req, arg);
        if (req != uapi::IOMMU_VDEVICE_TSM_REQ || lie == Lie::None) return r;
        auto* q = reinterpret_cast<uapi::iommu_vdevice_tsm_req*>(arg);
        if (q->op != op || !r) return r;
        ++told;
        switch (lie) {
            case Lie::ResidueBeyondBuffer: return static_cast<long>(q->resp_len) + 1;
            case Lie::SuccessWithErrorCode: q->tsm_code = 0x2a; return r;
            case Lie::HugeObject: {  // OBJECT_INFO says 16 MiB and a byte
                const std::uint64_t size = (16ULL << 20U) + 1;
                std::memcpy(reinterpret_cast<void*>(q->resp_uptr), &size, sizeof size);
                return r;
            }
            case Lie::RegenerateMidRead:
                if (told == 1) {  // after the first chunk, the object changes
                    std::uint32_t object = uapi::TSM_OBJECT_CERTIFICATES;
                    uapi::iommu_vdevice_tsm_req regen = *q;
                    regen.op = uapi::IOMMU_VDEVICE_TSM_REQ_OBJECT_REGENERATE;
                    regen.req_len = sizeof object;
                    regen.req_uptr = reinterpret_cast<std::uint64_t>(&object);
                    regen.resp_len = 0;
                    regen.resp_uptr = 0;
                    (void)inner().ioctl(fd, req, reinterpret_cast<unsigned long>(&regen));
                }
                return r;
            case Lie::None: break;
        }
        return r;
    }
};

class TsmTest : public ::testing::TestWithParam<const char*> {
protected:
    void SetUp() override {
        guest = std::make_unique<core::Guest>(
            core::GuestConfig{.name = "vm1", .platform = *parsePlatform(GetParam()), .claim_dir = rig.claim_dir}, tsm,
            anyDevice("vm1"));
        ASSERT_OK(rig.vmm.attachTo(g()));
        // SNP's trusted DMA needs guest_memfd by file, which the first region probes.
        auto gmem = rig.vmm.guestMemory(kGuestRamGpa, 4 * kMiB);
        ASSERT_OK(gmem);
        ASSERT_OK(g().addMemory(trusted(), kGuestRamGpa, 4 * kMiB, std::move(*gmem), 0, core::MemoryState::Shared,
                                std::nullopt));
        auto up = bringUp(g(), rig.vmm, kDevA, Stage::VDevice, 0x42);
        ASSERT_OK(up);
        dev = up->device;
    }
    void TearDown() override {
        if (guest) (void)guest->teardown();
    }
    core::Guest& g() { return *guest; }
    TdiState tdi() { return g().devices().at(dev).tdi; }
    std::vector<std::string> faultKinds() {
        std::vector<std::string> kinds;
        for (const auto& f : g().takeFaults()) kinds.push_back(f.kind);
        return kinds;
    }

    GuestRig rig{GetParam()};
    LyingTsm tsm{*rig.sys};
    std::unique_ptr<core::Guest> guest;
    core::ObjectId dev = 0;
};

TEST_P(TsmTest, TheGuestsRequestsAreRelayedWithTheStateTheyNeed) {
    const std::uint8_t run[] = {uapi::TDISP_RUN};
    auto early = g().tsmRequest(trusted(), dev, "set-tdi-state", run);
    ASSERT_FALSE(early);
    EXPECT_EQ(early.error().code, Code::InvalidState) << "RUN before LOCK";
    ASSERT_OK(g().bind(trusted(), dev));
    EXPECT_EQ(rig.sim.tdiState(kDevA), "locked");
    const std::uint8_t mmio[16] = {0, 0, 0, 0xe0, 0, 0, 0, 0, 0, 0x10};
    const auto validated = rig.sim.counter("tsm_mmio_validated");
    auto v = g().tsmRequest(trusted(), dev, "validate-mmio", mmio);
    ASSERT_OK(v);
    EXPECT_EQ(v->tsm_code, 0U);
    EXPECT_EQ(rig.sim.counter("tsm_mmio_validated"), validated + 1);
    auto ran = g().tsmRequest(trusted(), dev, "set-tdi-state", run);
    ASSERT_OK(ran);
    EXPECT_EQ(rig.sim.tdiState(kDevA), "run");
    EXPECT_EQ(tdi(), TdiState::Run);

    const std::uint8_t none[1] = {};
    auto dma = g().tsmRequest(trusted(), dev, "enable-dma", std::span<const std::uint8_t>(none, 0));
    if (g().config().platform == Platform::Snp) {
        ASSERT_OK(dma);
    } else {
        ASSERT_FALSE(dma);
        EXPECT_EQ(dma.error().code, Code::NotSupported) << "SEV-TIO's op";
    }
    // The TSM's own refusal comes back with its code, and the TDI is untouched.
    const std::uint8_t object_info[] = {9, 0, 0, 0};
    auto refused = g().tsmRequest(trusted(), dev, "object-info", object_info);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, Code::Kernel);
    EXPECT_NE(refused.error().message.find("tsm_code"), std::string::npos) << refused.error().message;
    EXPECT_EQ(rig.sim.tdiState(kDevA), "run");
    ASSERT_OK(g().unbind(trusted(), dev));
    EXPECT_EQ(rig.sim.tdiState(kDevA), "unlocked");
}

TEST_P(TsmTest, EvidenceIsWholeAndOfOneGeneration) {
    auto before_lock = g().evidence(trusted(), dev, EvidenceKind::InterfaceReport);
    ASSERT_FALSE(before_lock);
    EXPECT_EQ(before_lock.error().code, Code::InvalidState) << "no report before LOCK";
    auto measurements = g().evidence(trusted(), dev, EvidenceKind::Measurements);
    ASSERT_OK(measurements);
    ASSERT_OK(g().bind(trusted(), dev));
    auto relocked = g().evidence(trusted(), dev, EvidenceKind::Measurements);
    ASSERT_OK(relocked);
    EXPECT_EQ(relocked->generation, measurements->generation + 1) << "LOCK takes the measurements anew";
    EXPECT_NE(relocked->blob, measurements->blob);

    auto certs = g().evidence(trusted(), dev, EvidenceKind::Certificates);
    ASSERT_OK(certs);
    EXPECT_EQ(certs->blob.size(), 96U * 1024U) << "read in more than one chunk, all of it";
    const std::string head(certs->blob.begin(), certs->blob.begin() + 64);
    EXPECT_NE(head.find("generation " + std::to_string(certs->generation)), std::string::npos) << head;

    // The guest regenerates through its own op; the next read has the new generation.
    const std::uint8_t certificates[] = {1, 0, 0, 0};
    ASSERT_OK(g().tsmRequest(trusted(), dev, "object-regenerate", certificates));
    auto regenerated = g().evidence(trusted(), dev, EvidenceKind::Certificates);
    ASSERT_OK(regenerated);
    EXPECT_EQ(regenerated->generation, certs->generation + 1);

    // Replaced while it was read: the daemon reads it again, never a mix of the two.
    tsm.lie = LyingTsm::Lie::RegenerateMidRead;
    tsm.op = uapi::IOMMU_VDEVICE_TSM_REQ_OBJECT_READ;
    auto mixed = g().evidence(trusted(), dev, EvidenceKind::Certificates);
    ASSERT_OK(mixed);
    EXPECT_EQ(mixed->generation, regenerated->generation + 1);
    const std::string fresh(mixed->blob.begin(), mixed->blob.begin() + 64);
    EXPECT_NE(fresh.find("generation " + std::to_string(mixed->generation)), std::string::npos) << fresh;
    auto again = g().evidence(trusted(), dev, EvidenceKind::Certificates);
    ASSERT_OK(again);
    EXPECT_EQ(again->blob, mixed->blob) << "the whole object, exactly";
}

// The TSM committed LOCK and the answer was lost (EFAULT on copy-back): nobody knows
// the TDI's state, so the daemon quarantines it, says so, and never retries LOCK.
TEST_P(TsmTest, ALostAnswerQuarantinesAndOnlyUnbindOrAnAdminResetEndsIt) {
    const auto locks = rig.sim.counter("tsm_state_changes");
    // The second TSM request of Bind is LOCK (the first reads the TDI's state).
    rig.sim.injectFailure("IOMMU_VDEVICE_TSM_REQ", 2, "EFAULT");
    auto bind = g().bind(trusted(), dev);
    ASSERT_FALSE(bind);
    EXPECT_EQ(bind.error().code, Code::Kernel);
    EXPECT_NE(bind.error().message.find("quarantined"), std::string::npos) << bind.error().message;
    EXPECT_EQ(rig.sim.tdiState(kDevA), "locked") << "the TSM did commit";
    EXPECT_EQ(tdi(), TdiState::Quarantined);
    EXPECT_EQ(core::tdiStateName(g().devices().at(dev)), "quarantined");
    EXPECT_EQ(faultKinds(), std::vector<std::string>{"quarantined"});

    const auto model = modelOf(g());
    const std::uint8_t run[] = {uapi::TDISP_RUN};
    for (auto r : {g().bind(trusted(), dev), g().destroyVdevice(trusted(), dev), g().reset(trusted(), dev)}) {
        ASSERT_FALSE(r);
        EXPECT_NE(r.error().code, Code::Internal) << r.error().message;
    }
    auto req = g().tsmRequest(trusted(), dev, "set-tdi-state", run);
    ASSERT_FALSE(req);
    EXPECT_EQ(req.error().code, Code::InvalidState);
    auto vmm_reset = g().reset(trusted(), dev);
    ASSERT_FALSE(vmm_reset);
    EXPECT_EQ(vmm_reset.error().code, Code::AccessDenied) << "only an administrator on the admin door";
    EXPECT_EQ(modelOf(g()), model) << "refused calls changed nothing";
    EXPECT_EQ(rig.sim.counter("tsm_state_changes"), locks + 1) << "LOCK was never retried";
    EXPECT_EQ(rig.sim.tdiState(kDevA), "locked");

    ASSERT_OK(g().unbind(trusted(), dev));
    EXPECT_EQ(tdi(), TdiState::Unlocked) << "out of quarantine on the TSM's word";
    EXPECT_EQ(rig.sim.tdiState(kDevA), "unlocked");
    ASSERT_OK(g().bind(trusted(), dev)) << "and the lifecycle goes on";

    // The same from RUN, ended by an administrator's reset, which adopts the kernel's state.
    rig.sim.injectFailure("IOMMU_VDEVICE_TSM_REQ", 2, "EFAULT");
    ASSERT_FALSE(g().tsmRequest(trusted(), dev, "set-tdi-state", run));
    EXPECT_EQ(tdi(), TdiState::Quarantined);
    EXPECT_EQ(rig.sim.tdiState(kDevA), "run");
    ASSERT_OK(g().reset(trustedAdmin(), dev));
    EXPECT_EQ(rig.sim.tdiState(kDevA), "error") << "a reset under a running TDI breaks it";
    EXPECT_EQ(tdi(), TdiState::Error) << "the state the TSM reports, not a guess";
    ASSERT_OK(g().unbind(trusted(), dev));
}

// A kernel that does not answer within the bound: the call gives up (ETIMEDOUT), and
// a state change it may have made quarantines the TDI. The late answer is dropped.
TEST_P(TsmTest, AKernelThatDoesNotAnswerInTimeQuarantines) {
    rig.sys->setCallTimeout(std::chrono::milliseconds(100));
    rig.sim.injectFailure("IOMMU_VDEVICE_TSM_REQ", 2, "ETIMEDOUT");  // LOCK hangs
    auto bind = g().bind(trusted(), dev);
    rig.sys->setCallTimeout(kernel::SimSyscalls::kDefaultCallTimeout);
    // While the simulator is still in the hung call, nothing else waits the bound out
    // again: it fails at once.
    const auto t0 = std::chrono::steady_clock::now();
    auto meanwhile = rig.sys->listDirectory("/sys/bus/pci/devices");
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(50));
    ASSERT_FALSE(meanwhile);
    EXPECT_EQ(meanwhile.error(), ETIMEDOUT);
    ASSERT_FALSE(bind);
    EXPECT_EQ(bind.error().code, Code::Kernel);
    EXPECT_NE(bind.error().message.find("ETIMEDOUT"), std::string::npos) << bind.error().message;
    EXPECT_EQ(tdi(), TdiState::Quarantined);
    EXPECT_EQ(faultKinds(), std::vector<std::string>{"quarantined"});
    EXPECT_EQ(rig.sim.tdiState(kDevA), "locked") << "the hung call did commit";
    EXPECT_TRUE(rig.sys->listDirectory("/sys/bus/pci/devices")) << "answered again once the late answer came";
    ASSERT_OK(g().unbind(trusted(), dev)) << "the late answer is not taken for this one";
    EXPECT_EQ(tdi(), TdiState::Unlocked);
}

// The kernel's answer does not add up: more residue than buffer, or success with the
// TSM's error code. For a state change that is an unknown outcome.
TEST_P(TsmTest, AnswersThatDoNotAddUpQuarantine) {
    for (const auto lie : {LyingTsm::Lie::ResidueBeyondBuffer, LyingTsm::Lie::SuccessWithErrorCode}) {
        SCOPED_TRACE(static_cast<int>(lie));
        tsm.lie = lie;
        tsm.op = uapi::IOMMU_VDEVICE_TSM_REQ_SET_TDI_STATE;
        auto bind = g().bind(trusted(), dev);
        ASSERT_FALSE(bind);
        EXPECT_EQ(bind.error().code, Code::Kernel);
        EXPECT_EQ(tdi(), TdiState::Quarantined);
        EXPECT_EQ(faultKinds(), std::vector<std::string>{"quarantined"});
        tsm.lie = LyingTsm::Lie::None;
        ASSERT_OK(g().unbind(trusted(), dev));
        EXPECT_EQ(tdi(), TdiState::Unlocked);
    }
    // An object larger than the daemon hands out is refused before it is read.
    tsm.lie = LyingTsm::Lie::HugeObject;
    tsm.op = uapi::IOMMU_VDEVICE_TSM_REQ_OBJECT_INFO;
    const auto reads = rig.sim.counter("tsm_requests");
    auto huge = g().evidence(trusted(), dev, EvidenceKind::Measurements);
    ASSERT_FALSE(huge);
    EXPECT_EQ(huge.error().code, Code::LimitExceeded);
    EXPECT_EQ(rig.sim.counter("tsm_requests"), reads + 1) << "the size was enough to refuse";
    // A read whose answer does not add up is an error, not a quarantine.
    tsm.lie = LyingTsm::Lie::ResidueBeyondBuffer;
    tsm.op = uapi::IOMMU_VDEVICE_TSM_REQ_OBJECT_INFO;
    auto e = g().evidence(trusted(), dev, EvidenceKind::Certificates);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().code, Code::Kernel);
    EXPECT_EQ(tdi(), TdiState::Unlocked);
    EXPECT_TRUE(faultKinds().empty());
}

// A change behind the daemon's back is adopted at the next look, with a fault.
TEST_P(TsmTest, ChangesTheDaemonDidNotMakeAreAdoptedAndReported) {
    ASSERT_OK(g().bind(trusted(), dev));
    (void)g().takeFaults();
    rig.sim.configWrite(kDevA);
    ASSERT_OK(g().refreshDevice(dev));
    EXPECT_EQ(tdi(), TdiState::Error);
    EXPECT_EQ(faultKinds(), std::vector<std::string>{"tdi-error"});
    ASSERT_OK(g().refreshDevice(dev));
    EXPECT_TRUE(faultKinds().empty()) << "reported once";
    ASSERT_OK(g().unbind(trusted(), dev));
}

// fail-nth over every TSM request of a lifecycle, each failing with the kernel's
// worst answer: the TSM acted and the answer was lost (EFAULT on copy-back). A failed
// read changes nothing; a state change the TSM committed quarantines the TDI, and
// Unbind brings it back; nothing is ever retried behind the caller's back.
TEST_P(TsmTest, EveryTsmRequestLosesItsAnswerOnce) {
    const std::uint8_t run[] = {uapi::TDISP_RUN};
    const std::uint8_t mmio[16] = {0, 0, 0, 0xe0, 0, 0, 0, 0, 0, 0x10};
    const auto done = [](const auto& r) { return r ? Result<>{} : Result<>{std::unexpected(r.error())}; };
    const std::vector<std::pair<const char*, std::function<Result<>()>>> steps = {
        {"Bind", [&] { return g().bind(trusted(), dev); }},
        {"GetEvidence(certificates)", [&] { return done(g().evidence(trusted(), dev, EvidenceKind::Certificates)); }},
        {"validate-mmio", [&] { return done(g().tsmRequest(trusted(), dev, "validate-mmio", mmio)); }},
        {"RUN", [&] { return done(g().tsmRequest(trusted(), dev, "set-tdi-state", run)); }},
        {"GetEvidence(interface-report)",
         [&] { return done(g().evidence(trusted(), dev, EvidenceKind::InterfaceReport)); }},
        {"Unbind", [&] { return g().unbind(trusted(), dev); }},
    };
    const auto committed = [&] { return rig.sim.counter("tsm_state_changes") + rig.sim.counter("tsm_mmio_validated"); };
    // A clean run counts the requests to sweep.
    const auto requests = rig.sim.counter("tsm_requests");
    for (const auto& [name, step] : steps) {
        ASSERT_OK(step()) << name;
    }
    const auto per_run = rig.sim.counter("tsm_requests") - requests;
    ASSERT_GT(per_run, 10U);
    unsigned quarantines = 0;
    for (unsigned n = 1; n <= per_run; ++n) {
        SCOPED_TRACE("failing TSM request " + std::to_string(n));
        rig.sim.injectFailure("IOMMU_VDEVICE_TSM_REQ", n, "EFAULT");
        for (const auto& [name, step] : steps) {
            SCOPED_TRACE(name);
            const auto before = committed();
            const auto model = modelOf(g());
            auto r = step();
            if (r) continue;
            EXPECT_EQ(r.error().code, Code::Kernel) << r.error().message;
            const bool acted = committed() != before;
            EXPECT_EQ(tdi() == TdiState::Quarantined, acted) << r.error().message;
            if (acted) {
                ++quarantines;
                EXPECT_EQ(faultKinds(), std::vector<std::string>{"quarantined"});
                ASSERT_OK(g().unbind(trusted(), dev));
            } else {
                EXPECT_EQ(modelOf(g()), model) << "a failed request changed the model";
            }
            break;
        }
        if (tdi() != TdiState::Unlocked) {
            ASSERT_OK(g().unbind(trusted(), dev));
        }
        ASSERT_EQ(rig.sim.counter("failures_pending"), 0U);
        EXPECT_EQ(rig.sim.tdiState(kDevA), "unlocked");
    }
    EXPECT_EQ(quarantines, 4U) << "LOCK, validate-mmio, RUN and STOP each committed once before losing the answer";
}

// The PCI TSM as merged, through the whole lifecycle: a VF's DSM is its PF's function
// 0 (physfn), which CreateVDevice connects (past a devsec TSM listed first); after
// that the kernel names the DSM. An IDE-only PF0 is not TDISP.
TEST(PciTopology, AVfRunsTheWholeLifecycleAndAnIdeOnlyFunctionIsNotTdisp) {
    for (const char* platform : {"tdx", "snp", "cca"}) {
        SCOPED_TRACE(platform);
        GuestRig rig(platform, "proposed", pciTopology());
        core::Guest& g = *rig.guest;
        ASSERT_OK(rig.vmm.attachTo(g));
        auto gmem = rig.vmm.guestMemory(kGuestRamGpa, 4 * kMiB);
        ASSERT_OK(gmem);
        ASSERT_OK(g.addMemory(trusted(), kGuestRamGpa, 4 * kMiB, std::move(*gmem), 0, core::MemoryState::Shared,
                              std::nullopt));
        // The PF's driver set a VF token: a VF's bind must show it.
        auto vf = g.addDevice(trusted(), *Bdf::parse(kDevVf));
        ASSERT_OK(vf);
        const core::Device& d = g.devices().at(*vf);
        EXPECT_TRUE(d.tdisp_capable) << "its PF's DSM offers TDISP, though the VF shows no group yet";
        EXPECT_EQ(d.dsm.toString(), kDevA) << "the PF's function 0, not function 0 of the VF's own slot";
        ASSERT_OK(rig.vmm.addDeviceFile(g, *vf));
        auto no_token = g.attachDevice(trusted(), *vf);
        ASSERT_FALSE(no_token);
        EXPECT_EQ(no_token.error().code, Code::AccessDenied) << no_token.error().message;
        ASSERT_OK(g.removeDevice(trusted(), *vf));
        sd_id128_t wrong_id = SD_ID128_NULL;
        wrong_id.bytes[0] = 1;
        auto wrong = g.addDevice(trusted(), *Bdf::parse(kDevVf), std::to_array(wrong_id.bytes));
        ASSERT_OK(wrong);
        ASSERT_OK(rig.vmm.addDeviceFile(g, *wrong));
        EXPECT_EQ(g.attachDevice(trusted(), *wrong).error().code, Code::AccessDenied);
        ASSERT_OK(g.removeDevice(trusted(), *wrong));

        sd_id128_t token;
        ASSERT_GE(sd_id128_from_string(kVfToken, &token), 0);
        auto opened = g.addDevice(trusted(), *Bdf::parse(kDevVf), std::to_array(token.bytes));
        ASSERT_OK(opened);
        BroughtUp up_vf{.device = *opened};
        ASSERT_OK(rig.vmm.addDeviceFile(g, up_vf.device));
        ASSERT_OK(g.attachDevice(trusted(), up_vf.device));
        auto viommu = g.createViommu(trusted(), up_vf.device);
        ASSERT_OK(viommu);
        ASSERT_OK(g.createVdevice(trusted(), up_vf.device, *viommu, 0x10));
        ASSERT_OK(g.bind(trusted(), up_vf.device));
        const std::uint8_t run[] = {uapi::TDISP_RUN};
        ASSERT_OK(g.tsmRequest(trusted(), up_vf.device, "set-tdi-state", run));
        const auto* up = &up_vf;
        EXPECT_TRUE(g.devices().at(up->device).tsm_connected);
        EXPECT_EQ(rig.sim.tdiState(kDevVf), "run");
        EXPECT_EQ(rig.sim.tdiState(kDevA), "unlocked") << "the PF's own TDI is not the VF's";
        auto report = g.evidence(trusted(), up->device, EvidenceKind::InterfaceReport);
        ASSERT_OK(report);
        EXPECT_NE(std::string(report->blob.begin(), report->blob.begin() + 64).find(kDevVf), std::string::npos);
        ASSERT_OK(g.unbind(trusted(), up->device));
        ASSERT_OK(g.destroyVdevice(trusted(), up->device));
        EXPECT_EQ(rig.sim.tdiState(kDevVf), "unlocked");

        // An endpoint behind a switch: the upstream port is its DSM.
        auto behind = bringUp(g, rig.vmm, kDevBehindSwitch, Stage::Running, 0x20);
        ASSERT_OK(behind);
        EXPECT_EQ(g.devices().at(behind->device).dsm.toString(), kSwitchPort);
        EXPECT_EQ(rig.sim.tdiState(kDevBehindSwitch), "run");
        ASSERT_OK(g.unbind(trusted(), behind->device));

        auto ide = g.addDevice(trusted(), *Bdf::parse(kDevIdeOnly));
        ASSERT_OK(ide);
        EXPECT_FALSE(g.devices().at(*ide).tdisp_capable);
        EXPECT_EQ(core::tdiStateName(g.devices().at(*ide)), "unsupported");
        auto bind = g.bind(trusted(), *ide);
        ASSERT_FALSE(bind);
        EXPECT_EQ(bind.error().code, Code::NotSupported);
        EXPECT_TRUE(g.teardown().empty());
        rig.vmm.reset();
        EXPECT_TRUE(rig.kernelIsEmpty());
    }
}

INSTANTIATE_TEST_SUITE_P(Platforms, TsmTest, ::testing::Values("tdx", "snp", "cca"));

}  // namespace
}  // namespace tio::test
