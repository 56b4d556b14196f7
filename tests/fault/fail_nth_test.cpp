// fail-nth over the whole lifecycle (style-and-reliability.md B.3 T3, after the
// kernel's iommufd_fail_nth.c): for n = 1, 2, ... the n-th kernel call fails. The
// step that hit it must fail with a named error and change nothing (model and
// kernel), the same step must then succeed, the rest of the lifecycle and the
// teardown must complete, and afterwards the simulator holds no object and no file
// and this process holds no extra fd. The sweep ends when a run no longer reaches
// the n-th call: then every call has failed once.
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

#include "kernel/fault_injecting_syscalls.hpp"
#include "kernel/ioctl_table.hpp"
#include "kernel/kernel_error.hpp"
#include "support/fd_count.hpp"
#include "support/guest_rig.hpp"
#include "support/model_of.hpp"
#include "support/trusted_caller.hpp"
#include "wire/message_text.hpp"

namespace tio::test {
namespace {

using core::EvidenceKind;
using core::Guest;
using core::MemoryState;
using core::ObjectId;

// What the steps share: the VMM (its own process's side, never fault-injected), ids
// the steps created.
struct Context {
    TestVmm* vmm = nullptr;
    UniqueFd gmem;
    UniqueFd shared_memfd;  // the separate model's shared backing of both regions
    ObjectId shared = 0, priv = 0, dev = 0, plain = 0, viommu = 0;
};

struct Step {
    const char* name;
    std::function<Result<>(Guest&, Context&)> run;
    // A bind to iommufd cannot be undone (only closing every copy of the cdev unbinds,
    // and the VMM holds one): a failed Attach may leave the device bound, its
    // iommufd id recorded, and Attach goes on from there.
    bool may_keep_bind = false;
};

// The model with every device's iommufd binding left out.
std::string modelBesidesBinds(const Guest& g) {
    auto snapshot = persist::encode(g, "test");
    for (auto& d : *snapshot.mutable_devices()) d.set_dev_id(0);
    return wire::toText(snapshot);
}

// A step of the TSM (bind, the guest's requests, evidence, unbind): merged kernels
// have none of it, and the guest says NotSupported up front (features_test checks
// that); the sweep skips those steps there.
template <typename F>
std::function<Result<>(Guest&, Context&)> withTsm(F step) {
    return [step](Guest& g, Context& c) -> Result<> {
        if (!g.vm()->features.tsm_request) return {};
        return step(g, c);
    };
}

// A vIOMMU step: merged kernels have a vIOMMU type only for Arm SMMUv3.
template <typename F>
std::function<Result<>(Guest&, Context&)> withViommu(F step) {
    return [step](Guest& g, Context& c) -> Result<> {
        if (kernel::viommuTypeFor(g.config().platform, g.vm()->features.tsm_request) == 0) return {};
        return step(g, c);
    };
}

template <typename T>
Result<> done(const Result<T>& r) {
    return r ? Result<>{} : Result<>{std::unexpected(r.error())};
}

template <typename T>
Result<> keep(Result<T> r, T& into) {
    if (!r) return std::unexpected(r.error());
    into = std::move(*r);
    return {};
}

// The separate model's shared backing of [offset, ...) of the memfd, when the guest
// has that model; none in place.
std::optional<core::SharedBacking> sharedBackingFor(const Guest& g, const Context& c, std::uint64_t offset) {
    if (g.vm()->model != core::MemoryModel::Separate) return std::nullopt;
    return core::SharedBacking{std::move(*c.shared_memfd.duplicate()), offset};
}

// Two regions of `region` bytes at kGuestRamGpa (shared, then private). Kernels
// without hitless reshape map one area per page: there they are small, so that a
// sweep over every call stays short.
std::vector<Step> lifecycle(std::uint64_t region) {
    const std::uint8_t run[] = {0x02};
    const std::uint8_t state_query[] = {0x85};                           // TDISP GET_DEVICE_INTERFACE_STATE
    const std::uint8_t mmio[16] = {0, 0, 0, 0xe0, 0, 0, 0, 0, 0, 0x10};  // 4 KiB at 0xe0000000
    return {
        {"the VMM's KVM_CREATE_VM",
         [](Guest&, Context& c) {
             auto vm = c.vmm->vmFd();
             return vm ? Result<>{} : Result<>{std::unexpected(vm.error())};
         }},
        {"AttachVm", [](Guest& g, Context& c) { return c.vmm->attachTo(g); }},
        {"the VMM's guest_memfd, memslot and shared memfd",
         [region](Guest&, Context& c) {
             if (c.gmem) return Result<>{};
             // Mappable: on 7.4 the daemon maps shared pages through its own mmap.
             auto gmem = c.vmm->guestMemfd(2 * region, {.mmap = true, .init_shared = true});
             if (!gmem) return Result<>{std::unexpected(gmem.error())};
             c.gmem = std::move(*gmem);
             c.shared_memfd = TestVmm::sharedMemory(2 * region);
             if (!c.shared_memfd) return Result<>{fail(Code::Internal, "no memfd for the shared backing")};
             return c.vmm->bindMemory(kGuestRamGpa, 2 * region, c.gmem.get());
         }},
        {"AddMemory(shared)",
         [region](Guest& g, Context& c) {
             return keep(g.addMemory(trusted(), kGuestRamGpa, region, std::move(*c.gmem.duplicate()), 0,
                                     MemoryState::Shared, sharedBackingFor(g, c, 0)),
                         c.shared);
         }},
        {"AddMemory(private)",
         [region](Guest& g, Context& c) {
             return keep(g.addMemory(trusted(), kGuestRamGpa + region, region, std::move(*c.gmem.duplicate()), region,
                                     MemoryState::Private, sharedBackingFor(g, c, region)),
                         c.priv);
         }},
        {"AddDevice", [](Guest& g, Context& c) { return keep(g.addDevice(trusted(), *Bdf::parse(kDevA)), c.dev); }},
        {"the VMM's KVM_DEV_VFIO_FILE_ADD", [](Guest& g, Context& c) { return c.vmm->addDeviceFile(g, c.dev); }},
        {"Attach", [](Guest& g, Context& c) { return g.attachDevice(trusted(), c.dev); }, true},
        {"ConvertMemoryRanges",
         [region](Guest& g, Context&) {
             const core::MemoryConversion batch[] = {{kGuestRamGpa + 4096, 8192, MemoryState::Private},
                                                     {kGuestRamGpa + region, region / 4, MemoryState::Shared}};
             return g.convertMemory(trusted(), batch);
         }},
        {"PunchHole",
         [region](Guest& g, Context&) {
             auto r = g.punchHole(trusted(), kGuestRamGpa + region / 4, 3 * 4096);
             return r ? Result<>{} : Result<>{std::unexpected(r.error())};
         }},
        {"AddDevice(no TDISP)",
         [](Guest& g, Context& c) { return keep(g.addDevice(trusted(), *Bdf::parse(kDevPlain)), c.plain); }},
        {"CreateVIommu",
         withViommu([](Guest& g, Context& c) { return keep(g.createViommu(trusted(), c.dev), c.viommu); })},
        {"CreateVDevice",
         withViommu([](Guest& g, Context& c) { return g.createVdevice(trusted(), c.dev, c.viommu, 0x42); })},
        {"Bind", withTsm([](Guest& g, Context& c) { return g.bind(trusted(), c.dev); })},
        {"GetEvidence(certificates)",
         withTsm([](Guest& g, Context& c) { return done(g.evidence(trusted(), c.dev, EvidenceKind::Certificates)); })},
        {"GetEvidence(interface-report)", withTsm([](Guest& g, Context& c) {
             return done(g.evidence(trusted(), c.dev, EvidenceKind::InterfaceReport));
         })},
        {"TsmRequest(validate-mmio)",
         withTsm([mmio](Guest& g, Context& c) { return done(g.tsmRequest(trusted(), c.dev, "validate-mmio", mmio)); })},
        {"GuestRequest(info)", withTsm([state_query](Guest& g, Context& c) {
             return done(g.guestRequest(trusted(), c.dev, core::GuestRequestScope::Info, state_query));
         })},
        {"TsmRequest(RUN)",
         withTsm([run](Guest& g, Context& c) { return done(g.tsmRequest(trusted(), c.dev, "set-tdi-state", run)); })},
        {"Unbind", withTsm([](Guest& g, Context& c) { return g.unbind(trusted(), c.dev); })},
        {"DestroyVDevice", withViommu([](Guest& g, Context& c) { return g.destroyVdevice(trusted(), c.dev); })},
        {"DestroyVIommu", withViommu([](Guest& g, Context& c) { return g.destroyViommu(trusted(), c.viommu); })},
        {"RemoveDevice(no TDISP)", [](Guest& g, Context& c) { return g.removeDevice(trusted(), c.plain); }},
        {"RemoveDevice", [](Guest& g, Context& c) { return g.removeDevice(trusted(), c.dev); }},
        {"RemoveMemory(shared)", [](Guest& g, Context& c) { return g.removeMemory(trusted(), c.shared); }},
        {"AddDevice again",
         [](Guest& g, Context& c) { return keep(g.addDevice(trusted(), *Bdf::parse(kDevB)), c.dev); }},
    };
}

struct SweepParam {
    const char* platform;
    const char* errno_name;
    const char* profile = "proposed";
};

void PrintTo(const SweepParam& p, std::ostream* os) { *os << p.platform << "/" << p.errno_name << "/" << p.profile; }

class FailNthTest : public ::testing::TestWithParam<SweepParam> {};

TEST_P(FailNthTest, EveryKernelCallFailsOnceAndNothingLeaks) {
    GuestRig rig(GetParam().platform, GetParam().profile);
    const int err = kernel::errnoFromName(GetParam().errno_name);
    const bool reshape = std::string_view(GetParam().profile) == "proposed";
    const auto steps = lifecycle(reshape ? 8 * kMiB : 64 * 1024);
    const std::size_t fds_baseline = openFdCount();
    const auto config = rig.guest->config();
    rig.guest.reset();

    unsigned n = 1;
    for (;; ++n) {
        // iommufd_fail_nth.c caps its sweep at 400 injection points; so do we.
        ASSERT_LT(n, 400U) << "the sweep does not terminate";
        SCOPED_TRACE("failing call " + std::to_string(n));
        kernel::FaultInjectingSyscalls sys(*rig.sys);
        TestVmm vmm(*rig.sys);
        Context ctx{.vmm = &vmm};
        bool failed = false;
        {
            Guest g(config, sys, anyDevice(config.name));
            sys.armFailNth(n, err);
            for (const auto& step : steps) {
                SCOPED_TRACE(step.name);
                auto modelNow = [&] { return step.may_keep_bind ? modelBesidesBinds(g) : modelOf(g); };
                const auto model = modelNow();
                // The simulator may release a file the previous step closed after it
                // answers a later control call (support/eventually.hpp); its syscalls
                // and releases outrank the control door, and two round trips on the
                // kernel socket let every release pending before them go first.
                rig.settle();
                const auto objects = rig.sim.counter("objects");
                const auto files = rig.sim.counter("open_files");
                auto r = step.run(g, ctx);
                if (r) continue;
                ASSERT_TRUE(sys.consumed() && !failed) << "a failure that was not injected: " << r.error().message;
                failed = true;
                EXPECT_NE(r.error().code, Code::Internal) << r.error().message;
                EXPECT_EQ(modelNow(), model) << "a failed call changed the model";
                if (!step.may_keep_bind) {
                    EXPECT_TRUE(eventually([&] {
                        return rig.sim.counter("objects") == objects && rig.sim.counter("open_files") == files;
                    })) << "a failed call changed the kernel";
                }
                auto retry = step.run(g, ctx);
                ASSERT_TRUE(retry) << "retry without injection: " << retry.error().message;
            }
            // Teardown runs under the same armed counter: a failure there must still converge.
            (void)g.teardown();
        }
        ctx = Context{};
        vmm.reset();  // the VMM exits
        EXPECT_TRUE(rig.kernelIsEmpty()) << "objects=" << rig.sim.counter("objects")
                                         << " open_files=" << rig.sim.counter("open_files");
        EXPECT_EQ(openFdCount(), fds_baseline) << "the daemon side leaked an fd";
        EXPECT_EQ(rig.sim.tdiState(kDevA), "unlocked");
        if (::testing::Test::HasFatalFailure()) return;
        if (!sys.consumed()) break;  // the run ended before the n-th call: all swept
    }
    EXPECT_GT(n, 60U) << "the lifecycle makes fewer kernel calls than expected; is the sweep real?";
}

INSTANTIATE_TEST_SUITE_P(Sweeps, FailNthTest,
                         ::testing::Values(SweepParam{"tdx", "ENOMEM"}, SweepParam{"tdx", "EBUSY"},
                                           SweepParam{"snp", "ENOMEM"}, SweepParam{"cca", "EIO"},
                                           SweepParam{"tdx", "ENOMEM", "7.3"}, SweepParam{"snp", "EIO", "7.3"},
                                           SweepParam{"tdx", "ENOMEM", "7.4"}, SweepParam{"cca", "EBUSY", "7.4"}),
                         [](const auto& p) {
                             std::string profile = p.param.profile;
                             std::replace(profile.begin(), profile.end(), '.', '_');
                             return std::string(p.param.platform) + "_" + p.param.errno_name + "_" + profile;
                         });

}  // namespace
}  // namespace tio::test
