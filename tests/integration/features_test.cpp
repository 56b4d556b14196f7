// Feature probing: a kernel without an ioctl answers ENOTTY, and the guest learns
// that once, when it opens its iommufd; later calls that need the feature are
// NotSupported before any kernel call is made.
#include "kernel/features.hpp"

#include <gtest/gtest.h>

#include <set>

#include "kernel/forwarding_syscalls.hpp"
#include "kernel/ioctl_table.hpp"
#include "support/assert_ok.hpp"
#include "support/bring_up.hpp"
#include "support/guest_rig.hpp"
#include "support/trusted_caller.hpp"

namespace tio::test {
namespace {

// An older kernel: the named ioctls do not exist (ENOTTY); all else passes through.
class KernelWithout final : public kernel::ForwardingSyscalls {
public:
    KernelWithout(kernel::Syscalls& inner, std::set<std::string_view> missing)
        : ForwardingSyscalls(inner), missing_(std::move(missing)) {}
    unsigned long refused = 0;

    kernel::SysResult<long> ioctl(int fd, unsigned long req, unsigned long arg) override {
        const auto* d = kernel::findIoctl(req);
        if (d != nullptr && missing_.contains(d->name)) {
            ++refused;
            return std::unexpected(ENOTTY);
        }
        return inner().ioctl(fd, req, arg);
    }

private:
    std::set<std::string_view> missing_;
};

TEST(Features, TheSimulatorOffersEverything) {
    GuestRig rig("tdx");
    ASSERT_OK(rig.guest->createVm(trusted(), kernel::VmType::Sim));
    const auto& f = rig.guest->vm()->features;
    EXPECT_TRUE(f.map_file && f.viommu && f.vdevice && f.tsm_op && f.tsm_request);
}

TEST(Features, KernelWithoutTsmIoctlsRefusesBindUpFront) {
    GuestRig rig("snp");
    KernelWithout old(*rig.sys, {"IOMMU_VDEVICE_TSM_OP", "IOMMU_VDEVICE_TSM_REQ"});
    core::Guest g({.name = "old", .platform = Platform::Snp, .claim_dir = rig.claim_dir}, old, anyDevice("old"));
    ASSERT_OK(g.createVm(trusted(), kernel::VmType::Sim));
    EXPECT_FALSE(g.vm()->features.tsm_op);
    EXPECT_FALSE(g.vm()->features.tsm_request);
    EXPECT_TRUE(g.vm()->features.viommu);
    const auto probes = old.refused;
    EXPECT_EQ(probes, 2U) << "each missing ioctl was probed once";

    auto up = bringUp(g, kDevA, Stage::VDevice, 1);
    ASSERT_OK(up);
    const auto dev = &up->device;
    auto bind = g.bind(trusted(), *dev);
    ASSERT_FALSE(bind);
    EXPECT_EQ(bind.error().code, Code::NotSupported);
    const std::uint8_t run[] = {0x02};
    auto req = g.guestRequest(trusted(), *dev, core::GuestRequestScope::StateChange, run);
    ASSERT_FALSE(req);
    EXPECT_EQ(req.error().code, Code::NotSupported);
    EXPECT_EQ(old.refused, probes) << "refused before reaching the kernel";
    EXPECT_EQ(rig.sim.tdiState(kDevA), "unlocked");
    EXPECT_EQ(rig.sim.counter("failures_injected"), 0U);
}

TEST(Features, KernelWithoutViommuRefusesCreateVIommu) {
    GuestRig rig("cca");
    KernelWithout old(*rig.sys, {"IOMMU_VIOMMU_ALLOC", "IOMMU_VDEVICE_ALLOC"});
    core::Guest g({.name = "old", .platform = Platform::Cca, .claim_dir = rig.claim_dir}, old, anyDevice("old"));
    ASSERT_OK(g.createVm(trusted(), kernel::VmType::Sim));
    auto dev = g.addDevice(trusted(), *Bdf::parse(kDevA));
    ASSERT_OK(dev);
    const auto objects = rig.sim.counter("objects");
    auto viommu = g.createViommu(trusted(), *dev);
    ASSERT_FALSE(viommu);
    EXPECT_EQ(viommu.error().code, Code::NotSupported);
    EXPECT_NE(viommu.error().message.find("IOMMU_VIOMMU_ALLOC"), std::string::npos);
    EXPECT_EQ(rig.sim.counter("objects"), objects);
}

TEST(Features, KernelWithoutMapFileCannotMapMemory) {
    GuestRig rig("tdx");
    KernelWithout old(*rig.sys, {"IOMMU_IOAS_MAP_FILE"});
    core::Guest g({.name = "old", .platform = Platform::Tdx, .claim_dir = rig.claim_dir}, old, anyDevice("old"));
    ASSERT_OK(g.createVm(trusted(), kernel::VmType::Sim));
    auto gmem = g.createGuestMemory(trusted(), 4 * kMiB, {});
    ASSERT_OK(gmem);
    auto shared =
        g.addMemory(trusted(), kGuestRamGpa, 4 * kMiB, std::move(*gmem->duplicate()), 0, core::MemoryState::Shared);
    ASSERT_FALSE(shared);
    EXPECT_EQ(shared.error().code, Code::NotSupported);
    EXPECT_TRUE(g.memory().empty());
    // Private memory on TDX is not mapped in the IOAS at all, so it needs no MAP_FILE.
    ASSERT_OK(g.addMemory(trusted(), kGuestRamGpa, 4 * kMiB, std::move(*gmem), 0, core::MemoryState::Private));
}

}  // namespace
}  // namespace tio::test
