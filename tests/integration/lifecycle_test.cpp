// The lifecycle of architecture.md section 5, driven through the core against the
// simulated kernel; the simulator is the oracle for TDI states, DMA and leaks.
#include <gtest/gtest.h>

#include "support/assert_ok.hpp"
#include "support/bring_up.hpp"
#include "support/fd_count.hpp"
#include "support/guest_rig.hpp"
#include "support/model_of.hpp"
#include "support/trusted_caller.hpp"

namespace tio::test {
namespace {

using core::GuestRequestScope;
using core::MemoryState;
using core::ObjectId;
using core::TdiState;

template <typename R>
void expectError(const R& r, Code code, std::string_view needle = {}) {
    ASSERT_FALSE(r) << "expected " << toString(code);
    EXPECT_EQ(r.error().code, code) << r.error().message;
    if (!needle.empty()) {
        EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
    }
}

class LifecycleTest : public ::testing::TestWithParam<const char*> {
protected:
    GuestRig rig{GetParam()};
    core::Guest& g = *rig.guest;
};

TEST_P(LifecycleTest, WholeSequenceThenNothingLeft) {
    const std::size_t fds_before = openFdCount();
    {
        ASSERT_OK(rig.vmm.attachTo(g));
        auto gmem = rig.vmm.guestMemfd(64 * kMiB);
        ASSERT_OK(gmem);
        ASSERT_OK(rig.vmm.bindMemory(kGuestRamGpa, 32 * kMiB, gmem->get()));
        auto shared = g.addMemory(trusted(), kGuestRamGpa, 16 * kMiB, std::move(*gmem->duplicate()), 0,
                                  MemoryState::Shared, std::nullopt);
        ASSERT_OK(shared);
        auto priv = g.addMemory(trusted(), kGuestRamGpa + 16 * kMiB, 16 * kMiB, std::move(*gmem->duplicate()),
                                16 * kMiB, MemoryState::Private, std::nullopt);
        ASSERT_OK(priv);

        auto dev = g.addDevice(trusted(), *Bdf::parse(kDevA));
        ASSERT_OK(dev);
        EXPECT_FALSE(g.devices().at(*dev).state == core::DeviceState::Attached) << "AddDevice only opens";
        ASSERT_OK(rig.vmm.addDeviceFile(g, *dev));
        ASSERT_OK(g.attachDevice(trusted(), *dev));
        EXPECT_EQ(g.devices().at(*dev).tdi, TdiState::Unlocked);
        EXPECT_EQ(g.devices().at(*dev).vfio_name, "vfio0");
        // The device DMAs into shared guest memory through the nest-parent page table.
        const std::uint64_t shared_iova = rig.sim.sharedIova(kGuestRamGpa);
        EXPECT_EQ(rig.sim.dma(kDevA, shared_iova, 16 * kMiB, true), "ok");

        auto viommu = g.createViommu(trusted(), *dev);
        ASSERT_OK(viommu);
        ASSERT_OK(g.createVdevice(trusted(), *dev, *viommu, 0x42));
        EXPECT_TRUE(g.devices().at(*dev).tsm_connected) << "the vDEVICE on a TSM vIOMMU connected the DSM";
        EXPECT_EQ(rig.sim.tdiState(kDevA), "unlocked") << "binding is not LOCK";
        ASSERT_OK(g.bind(trusted(), *dev));
        EXPECT_EQ(rig.sim.tdiState(kDevA), "locked");

        const std::uint8_t report_req[] = {0x84};  // TDISP GET_DEVICE_INTERFACE_REPORT
        auto report = g.guestRequest(trusted(), *dev, GuestRequestScope::Info, report_req);
        ASSERT_OK(report);
        EXPECT_NE(std::string(report->begin(), report->end()).find(kDevA), std::string::npos);
        const std::uint8_t run[] = {0x02};
        auto ran = g.guestRequest(trusted(), *dev, GuestRequestScope::StateChange, run);
        ASSERT_OK(ran);
        EXPECT_EQ(*ran, std::vector<std::uint8_t>{0x02});
        EXPECT_EQ(rig.sim.tdiState(kDevA), "run");
        EXPECT_EQ(g.devices().at(*dev).tdi, TdiState::Run);

        ASSERT_OK(g.unbind(trusted(), *dev));
        EXPECT_EQ(rig.sim.tdiState(kDevA), "unlocked");
        ASSERT_OK(g.destroyVdevice(trusted(), *dev));
        ASSERT_OK(g.destroyViommu(trusted(), *viommu));
        ASSERT_OK(g.removeDevice(trusted(), *dev));
        EXPECT_EQ(rig.sim.dma(kDevA, shared_iova, 4096, false), "blocked");
        ASSERT_OK(g.removeMemory(trusted(), *shared));
        ASSERT_OK(g.removeMemory(trusted(), *priv));
        EXPECT_TRUE(g.teardown().empty());
        EXPECT_EQ(g.state(), core::GuestState::Empty);
        rig.vmm.reset();  // the VMM exits
    }
    EXPECT_TRUE(rig.kernelIsEmpty()) << "objects=" << rig.sim.counter("objects")
                                     << " open_files=" << rig.sim.counter("open_files");
    EXPECT_EQ(openFdCount(), fds_before);
}

// Every step refused when its precondition is missing, with the step to do first named.
TEST_P(LifecycleTest, OutOfOrderCallsAreRefusedAndChangeNothing) {
    const Bdf a = *Bdf::parse(kDevA);
    expectError(g.addDevice(trusted(), a), Code::InvalidState, "AttachVm first");
    ASSERT_OK(rig.vmm.attachTo(g));
    auto again = rig.vmm.vmFd();
    ASSERT_OK(again);
    expectError(g.attachVm(trusted(), std::move(*again), kernel::VmType::Default), Code::InvalidState,
                "Teardown first");
    auto dev = g.addDevice(trusted(), a);
    ASSERT_OK(dev);
    expectError(g.addDevice(trusted(), a), Code::Busy);
    expectError(g.createViommu(trusted(), *dev), Code::InvalidState, "Device.Attach first");
    ASSERT_OK(rig.vmm.addDeviceFile(g, *dev));
    ASSERT_OK(g.attachDevice(trusted(), *dev));
    expectError(g.attachDevice(trusted(), *dev), Code::InvalidState);
    expectError(g.bind(trusted(), *dev), Code::InvalidState, "CreateVDevice first");
    const std::uint8_t run[] = {0x02};
    expectError(g.guestRequest(trusted(), *dev, GuestRequestScope::StateChange, run), Code::InvalidState,
                "CreateVDevice first");
    expectError(g.unbind(trusted(), *dev), Code::InvalidState, "Bind first");
    expectError(g.destroyVdevice(trusted(), *dev), Code::InvalidState, "CreateVDevice first");
    expectError(g.createVdevice(trusted(), *dev, 999, 1), Code::NotFound);
    expectError(g.destroyViommu(trusted(), 999), Code::NotFound);
    expectError(g.removeDevice(trusted(), 999), Code::NotFound);

    auto viommu = g.createViommu(trusted(), *dev);
    ASSERT_OK(viommu);
    ASSERT_OK(g.createVdevice(trusted(), *dev, *viommu, 7));
    expectError(g.createVdevice(trusted(), *dev, *viommu, 8), Code::InvalidState, "DestroyVDevice first");
    expectError(g.guestRequest(trusted(), *dev, GuestRequestScope::StateChange, run), Code::InvalidState, "Bind first");
    expectError(g.destroyViommu(trusted(), *viommu), Code::Busy, "DestroyVDevice first");
    expectError(g.removeDevice(trusted(), *dev), Code::Busy, "DestroyVDevice first");
    ASSERT_OK(g.bind(trusted(), *dev));
    expectError(g.bind(trusted(), *dev), Code::InvalidState, "Unbind first");
    expectError(g.destroyVdevice(trusted(), *dev), Code::InvalidState, "Unbind first");
    expectError(g.reset(trusted(), *dev), Code::InvalidState, "Unbind first");
    ASSERT_OK(g.guestRequest(trusted(), *dev, GuestRequestScope::StateChange, run));
    expectError(g.guestRequest(trusted(), *dev, GuestRequestScope::StateChange, run), Code::InvalidState, "locked");
    EXPECT_EQ(rig.sim.tdiState(kDevA), "run") << "refused calls did not touch the TDI";
    const auto before = modelOf(g);
    const auto objects = rig.sim.counter("objects");
    expectError(g.destroyViommu(trusted(), *viommu), Code::Busy);
    EXPECT_EQ(modelOf(g), before);
    EXPECT_EQ(rig.sim.counter("objects"), objects);
}

TEST_P(LifecycleTest, ConfigWriteBreaksTheTdiAndOnlyUnbindHelps) {
    ASSERT_OK(rig.vmm.attachTo(g));
    auto up = bringUp(g, rig.vmm, kDevB, Stage::Running, 3);
    ASSERT_OK(up);
    const auto dev = &up->device;
    rig.sim.configWrite(kDevB);
    EXPECT_EQ(rig.sim.tdiState(kDevB), "error");
    expectError(g.reset(trusted(), *dev), Code::InvalidState, "error");
    EXPECT_EQ(g.devices().at(*dev).tdi, TdiState::Error) << "the model follows the device";
    const std::uint8_t report[] = {0x84};
    expectError(g.guestRequest(trusted(), *dev, GuestRequestScope::Info, report), Code::InvalidState);
    ASSERT_OK(g.unbind(trusted(), *dev));
    EXPECT_EQ(rig.sim.tdiState(kDevB), "unlocked");
    ASSERT_OK(g.reset(trusted(), *dev)) << "an unlocked function may be reset";
}

TEST_P(LifecycleTest, FunctionWithoutTdispCannotBind) {
    ASSERT_OK(rig.vmm.attachTo(g));
    auto up = bringUp(g, rig.vmm, kDevPlain, Stage::VDevice, 1);
    ASSERT_OK(up);
    const auto dev = &up->device;
    EXPECT_FALSE(g.devices().at(*dev).tdisp_capable);
    EXPECT_EQ(core::tdiStateName(g.devices().at(*dev)), "unsupported");
    expectError(g.bind(trusted(), *dev), Code::NotSupported);
    ASSERT_OK(g.destroyVdevice(trusted(), *dev));
}

TEST_P(LifecycleTest, TeardownFromEveryStepLeavesNothing) {
    // Step k: run the first k steps of bring-up, then tear down.
    for (int k = 0; k <= 9; ++k) {
        SCOPED_TRACE("after step " + std::to_string(k));
        std::optional<ObjectId> dev, viommu;
        int step = 0;
        auto more = [&] { return step++ < k; };
        if (more()) {
            ASSERT_OK(rig.vmm.attachTo(g));
        }
        if (more()) {
            auto gmem = rig.vmm.guestMemory(kGuestRamGpa, 8 * kMiB);
            ASSERT_OK(gmem);
            ASSERT_OK(
                g.addMemory(trusted(), kGuestRamGpa, 8 * kMiB, std::move(*gmem), 0, MemoryState::Shared, std::nullopt));
        }
        if (more()) dev = *g.addDevice(trusted(), *Bdf::parse(kDevA));
        if (more()) {
            ASSERT_OK(rig.vmm.addDeviceFile(g, *dev));
            ASSERT_OK(g.attachDevice(trusted(), *dev));
        }
        if (more()) viommu = *g.createViommu(trusted(), *dev);
        if (more()) {
            ASSERT_OK(g.createVdevice(trusted(), *dev, *viommu, 5));
        }
        if (more()) {
            ASSERT_OK(g.bind(trusted(), *dev));
        }
        const std::uint8_t run[] = {0x02};
        if (more()) {
            ASSERT_OK(g.guestRequest(trusted(), *dev, GuestRequestScope::StateChange, run));
        }
        if (more()) (void)g.addDevice(trusted(), *Bdf::parse(kDevB));
        EXPECT_TRUE(g.teardown().empty());
        EXPECT_EQ(rig.sim.tdiState(kDevA), "unlocked");
        rig.vmm.reset();  // the VMM exits
        EXPECT_TRUE(rig.kernelIsEmpty());
    }
}

TEST_P(LifecycleTest, SecondGuestCannotClaimAHeldDevice) {
    ASSERT_OK(rig.vmm.attachTo(g));
    ASSERT_OK(g.addDevice(trusted(), *Bdf::parse(kDevA)));
    auto sys2 = rig.sim.connect();
    core::Guest other({.name = "vm2", .platform = g.config().platform, .claim_dir = rig.claim_dir}, *sys2,
                      anyDevice("vm2"));
    TestVmm other_vmm(*sys2);
    ASSERT_OK(other_vmm.attachTo(other));
    const auto objects = rig.sim.counter("objects");
    expectError(other.addDevice(trusted(), *Bdf::parse(kDevA)), Code::Busy, "claimed");
    EXPECT_EQ(rig.sim.counter("objects"), objects);
    ASSERT_OK(other.addDevice(trusted(), *Bdf::parse(kDevB)));
    (void)g.teardown();
    ASSERT_OK(other.addDevice(trusted(), *Bdf::parse(kDevA))) << "released by teardown";
}

INSTANTIATE_TEST_SUITE_P(Platforms, LifecycleTest, ::testing::Values("tdx", "snp", "cca"),
                         [](const auto& p) { return std::string(p.param); });

}  // namespace
}  // namespace tio::test
