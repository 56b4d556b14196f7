// Feature probing: a kernel without an ioctl answers ENOTTY, and the guest learns
// that once, when it opens its iommufd; later calls that need the feature are
// NotSupported before any kernel call is made.
#include "kernel/features.hpp"

#include <gtest/gtest.h>

#include <set>

#include "kernel/forwarding_syscalls.hpp"
#include "kernel/ioctl_table.hpp"
#include "kernel/uapi/iommufd.hpp"
#include "kernel/uapi/iommufd_tsm_proposed.hpp"
#include "persist/snapshot_codec.hpp"
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

TEST(Features, TheProposedProfileOffersEverything) {
    GuestRig rig("tdx");
    ASSERT_OK(rig.vmm.attachTo(*rig.guest));
    const auto& f = rig.guest->vm()->features;
    EXPECT_TRUE(f.map_file && f.viommu && f.vdevice && f.tsm_request && f.reshape);
    EXPECT_EQ(rig.guest->vm()->model, core::MemoryModel::InPlace);
    EXPECT_FALSE(rig.guest->vm()->gmem_map_file) << "probed with the first guest_memfd, not before";
    auto gmem = rig.vmm.guestMemory(kGuestRamGpa, 4 * kMiB);
    ASSERT_OK(gmem);
    ASSERT_OK(rig.guest->addMemory(trusted(), kGuestRamGpa, 4 * kMiB, std::move(*gmem), 0, core::MemoryState::Shared,
                                   std::nullopt));
    EXPECT_EQ(rig.guest->vm()->gmem_map_file, std::optional<bool>(true));
}

// What each kernel profile has (kernel-as-it-is.md section 7), as the daemon probes it.
TEST(Features, EachProfileIsProbedForWhatItHas) {
    struct Expect {
        const char* profile;
        core::MemoryModel model;
        bool gmem_map_file;
        bool reshape;
    };
    for (const Expect& e : {Expect{"7.3", core::MemoryModel::Separate, false, false},
                            Expect{"7.4", core::MemoryModel::InPlace, false, false},
                            Expect{"proposed", core::MemoryModel::InPlace, true, true}}) {
        SCOPED_TRACE(e.profile);
        GuestRig rig("tdx", e.profile);
        core::Guest& g = *rig.guest;
        ASSERT_OK(rig.vmm.attachTo(g));
        EXPECT_EQ(g.vm()->model, e.model);
        EXPECT_EQ(g.vm()->features.reshape, e.reshape);
        // 0x95 is IOMMU_IOAS_NOIOMMU_GET_PA on merged kernels: never taken for the TSM.
        EXPECT_EQ(g.vm()->features.tsm_request, e.reshape) << "the TSM series only with the proposed profile";
        EXPECT_TRUE(g.vm()->features.map_file) << "merged in 6.13";
        auto gmem = rig.vmm.guestMemory(kGuestRamGpa, 4 * kMiB);
        ASSERT_OK(gmem);
        auto region = g.addMemory(trusted(), kGuestRamGpa, 4 * kMiB, std::move(*gmem), 0, core::MemoryState::Shared,
                                  std::nullopt);
        ASSERT_OK(region);
        if (e.model == core::MemoryModel::InPlace) {
            EXPECT_EQ(g.vm()->gmem_map_file, std::optional<bool>(e.gmem_map_file));
        }
        // Shared pages reach the device only where the kernel maps guest_memfd by file
        // (the separate model maps its memfd, which this region did not give).
        const bool mapped = e.gmem_map_file;
        EXPECT_EQ(g.mappingRules(g.memory().at(*region)).shared_dma, mapped);
        EXPECT_EQ(g.mappedBytes(g.memory().at(*region)), mapped ? 4 * kMiB : 0);
        // The snapshot keeps what was probed: a restart does not probe again.
        std::map<std::string, UniqueFd> no_fds;
        const auto image = persist::decode(persist::encode(g, "test"), no_fds);
        ASSERT_TRUE(image.iommu_features);
        EXPECT_EQ(image.iommu_features->reshape, e.reshape);
        EXPECT_EQ(image.iommu_features->tsm_request, e.reshape);
        EXPECT_TRUE(image.iommu_features->map_file);
        EXPECT_EQ(image.iommu_features->viommu, g.vm()->features.viommu);
        EXPECT_EQ(image.iommu_features->vdevice, g.vm()->features.vdevice);
    }
}

TEST(Features, KernelWithoutTsmIoctlsRefusesBindUpFront) {
    GuestRig rig("snp");
    KernelWithout old(*rig.sys, {"IOMMU_VDEVICE_TSM_REQ"});
    core::Guest g({.name = "old", .platform = Platform::Snp, .claim_dir = rig.claim_dir}, old, anyDevice("old"));
    TestVmm vmm(*rig.sys);
    ASSERT_OK(vmm.attachTo(g));
    EXPECT_FALSE(g.vm()->features.tsm_request);
    EXPECT_TRUE(g.vm()->features.viommu);
    const auto probes = old.refused;
    EXPECT_EQ(probes, 1U) << "the missing ioctl was probed once";

    auto up = bringUp(g, vmm, kDevA, Stage::Device);
    ASSERT_OK(up);
    const auto dev = &up->device;
    auto viommu = g.createViommu(trusted(), *dev);
    ASSERT_FALSE(viommu);
    EXPECT_EQ(viommu.error().code, Code::NotSupported) << "upstream AMD has no vIOMMU type; the TSM supplies one";
    auto bind = g.bind(trusted(), *dev);
    ASSERT_FALSE(bind);
    EXPECT_EQ(bind.error().code, Code::NotSupported);
    EXPECT_NE(bind.error().message.find("IOMMU_VDEVICE_TSM_REQ"), std::string::npos) << bind.error().message;
    const std::uint8_t run[] = {0x02};
    auto req = g.tsmRequest(trusted(), *dev, "set-tdi-state", run);
    ASSERT_FALSE(req);
    EXPECT_EQ(req.error().code, Code::NotSupported);
    EXPECT_EQ(old.refused, probes) << "refused before reaching the kernel";
    EXPECT_EQ(rig.sim.tdiState(kDevA), "unlocked");
    EXPECT_EQ(rig.sim.counter("failures_injected"), 0U);
}

// A merged kernel answers 0x95 (IOMMU_IOAS_NOIOMMU_GET_PA) with EINVAL to a struct
// too small for it: "not ENOTTY" would read that as a TSM ioctl. Bind and TsmRequest
// then answer NotSupported, naming what is missing, before any kernel call or sysfs
// access.
TEST(Features, NoiommuGetPaIsNeverMistakenForTheTsm) {
    for (const char* profile : {"7.3", "7.4"}) {
        SCOPED_TRACE(profile);
        GuestRig rig("cca", profile);  // CCA: a merged vIOMMU type, so a vDEVICE exists
        core::Guest& g = *rig.guest;
        ASSERT_OK(rig.vmm.attachTo(g));
        uapi::iommu_vdevice_tsm_req probe{};
        probe.size = 16;  // the obsolete v5 bind's size, too small for NOIOMMU_GET_PA
        auto answer = rig.sys->ioctl(g.vm()->iommufd.fd(), uapi::IOMMU_IOAS_NOIOMMU_GET_PA,
                                     reinterpret_cast<unsigned long>(&probe));
        ASSERT_FALSE(answer);
        EXPECT_EQ(answer.error(), EINVAL) << "something answers at 0x95, and not with ENOTTY";
        EXPECT_FALSE(g.vm()->features.tsm_request);
        auto up = bringUp(g, rig.vmm, kDevA, Stage::VDevice, 1);
        ASSERT_OK(up);
        EXPECT_EQ(rig.sim.counter("objects"), 5U) << "IOAS, HWPT, device, plain vIOMMU, vDEVICE";
        const auto calls = rig.sim.counter("syscalls");
        auto bind = g.bind(trusted(), up->device);
        ASSERT_FALSE(bind);
        EXPECT_EQ(bind.error().code, Code::NotSupported);
        EXPECT_NE(bind.error().message.find("IOMMU_VDEVICE_TSM_REQ"), std::string::npos) << bind.error().message;
        const std::uint8_t run[] = {0x02};
        auto req = g.tsmRequest(trusted(), up->device, "set-tdi-state", run);
        ASSERT_FALSE(req);
        EXPECT_EQ(req.error().code, Code::NotSupported);
        EXPECT_EQ(rig.sim.counter("syscalls"), calls) << "no kernel call, no sysfs access";
        EXPECT_FALSE(g.devices().at(up->device).tsm_connected) << "the DSM was never connected";
    }
}

// The fingerprint is the proposal's own pair of answers at 0x96: ENOENT for vDEVICE 0
// in a 48-byte request, EINVAL for a 40-byte one. A kernel that answers otherwise
// there (another ioctl took the number, or an older shape) has no TSM for the daemon.
TEST(Features, TheTsmIsFoundOnlyByItsFingerprint) {
    struct Answers {
        int full;
        int v5_size;
        bool present;
    };
    for (const Answers a :
         {Answers{ENOENT, EINVAL, true}, Answers{EINVAL, EINVAL, false}, Answers{ENOENT, ENOENT, false},
          Answers{ENOTTY, ENOTTY, false}, Answers{EOPNOTSUPP, EINVAL, false}}) {
        SCOPED_TRACE(std::to_string(a.full) + "/" + std::to_string(a.v5_size));
        GuestRig rig("tdx");
        class Answering final : public kernel::ForwardingSyscalls {
        public:
            Answering(kernel::Syscalls& inner, Answers answers) : ForwardingSyscalls(inner), answers_(answers) {}
            kernel::SysResult<long> ioctl(int fd, unsigned long req, unsigned long arg) override {
                if (req != uapi::IOMMU_VDEVICE_TSM_REQ) return inner().ioctl(fd, req, arg);
                const auto size = reinterpret_cast<const uapi::iommu_vdevice_tsm_req*>(arg)->size;
                return std::unexpected(size == 48 ? answers_.full : answers_.v5_size);
            }

        private:
            Answers answers_;
        } kernel(*rig.sys, a);
        core::Guest g({.name = "fp", .platform = Platform::Tdx, .claim_dir = rig.claim_dir}, kernel, anyDevice("fp"));
        TestVmm vmm(*rig.sys);
        ASSERT_OK(vmm.attachTo(g));
        EXPECT_EQ(g.vm()->features.tsm_request, a.present);
    }
}

// A kernel with the TSM but without guest_memfd by file (MAP_FILE refuses it, as
// merged kernels do): an SNP guest's shared memory is still mapped (by address),
// but its trusted DMA cannot be, so Bind answers NotSupported naming what is missing.
TEST(Features, SnpBindNeedsGuestMemfdByFile) {
    GuestRig rig("snp");
    class RefusesGuestMemfdInMapFile final : public kernel::ForwardingSyscalls {
    public:
        using ForwardingSyscalls::ForwardingSyscalls;
        kernel::SysResult<long> ioctl(int fd, unsigned long req, unsigned long arg) override {
            if (req == uapi::IOMMU_IOAS_MAP_FILE) {
                auto* m = reinterpret_cast<uapi::iommu_ioas_map_file*>(arg);
                auto id = inner().identify(m->fd);
                if (id && id->link == kernel::kGuestMemfdFileName) return std::unexpected(EINVAL);
            }
            return inner().ioctl(fd, req, arg);
        }
    } kernel(*rig.sys);
    core::Guest g({.name = "rfc", .platform = Platform::Snp, .claim_dir = rig.claim_dir}, kernel, anyDevice("rfc"));
    TestVmm vmm(*rig.sys);
    ASSERT_OK(vmm.attachTo(g));
    auto gmem = vmm.guestMemfd(4 * kMiB, {.mmap = true, .init_shared = true});
    ASSERT_OK(gmem);
    ASSERT_OK(vmm.bindMemory(kGuestRamGpa, 4 * kMiB, gmem->get()));
    auto region =
        g.addMemory(trusted(), kGuestRamGpa, 4 * kMiB, std::move(*gmem), 0, core::MemoryState::Shared, std::nullopt);
    ASSERT_OK(region);
    EXPECT_EQ(g.vm()->gmem_map_file, std::optional<bool>(false));
    EXPECT_TRUE(g.mappingRules(g.memory().at(*region)).shared_dma) << "shared memory is still served";
    auto up = bringUp(g, vmm, kDevA, Stage::VDevice, 1);
    ASSERT_OK(up);
    auto bind = g.bind(trusted(), up->device);
    ASSERT_FALSE(bind);
    EXPECT_EQ(bind.error().code, Code::NotSupported);
    EXPECT_NE(bind.error().message.find("IOMMU_IOAS_MAP_FILE"), std::string::npos) << bind.error().message;
    EXPECT_EQ(rig.sim.tdiState(kDevA), "unlocked");
}

TEST(Features, KernelWithoutViommuRefusesCreateVIommu) {
    GuestRig rig("cca");
    KernelWithout old(*rig.sys, {"IOMMU_VIOMMU_ALLOC", "IOMMU_VDEVICE_ALLOC"});
    core::Guest g({.name = "old", .platform = Platform::Cca, .claim_dir = rig.claim_dir}, old, anyDevice("old"));
    TestVmm vmm(*rig.sys);
    ASSERT_OK(vmm.attachTo(g));
    auto dev = bringUp(g, vmm, kDevA, Stage::Device);
    ASSERT_OK(dev);
    const auto objects = rig.sim.counter("objects");
    auto viommu = g.createViommu(trusted(), dev->device);
    ASSERT_FALSE(viommu);
    EXPECT_EQ(viommu.error().code, Code::NotSupported);
    EXPECT_NE(viommu.error().message.find("IOMMU_VIOMMU_ALLOC"), std::string::npos);
    EXPECT_EQ(rig.sim.counter("objects"), objects);
}

TEST(Features, KernelWithoutMapFileMapsNoMemory) {
    GuestRig rig("tdx");
    KernelWithout old(*rig.sys, {"IOMMU_IOAS_MAP_FILE"});
    core::Guest g({.name = "old", .platform = Platform::Tdx, .claim_dir = rig.claim_dir}, old, anyDevice("old"));
    TestVmm vmm(*rig.sys);
    ASSERT_OK(vmm.attachTo(g));
    auto gmem = vmm.guestMemory(kGuestRamGpa, 4 * kMiB);
    ASSERT_OK(gmem);
    auto shared = g.addMemory(trusted(), kGuestRamGpa, 4 * kMiB, std::move(*gmem->duplicate()), 0,
                              core::MemoryState::Shared, std::nullopt);
    ASSERT_OK(shared);
    EXPECT_EQ(g.vm()->gmem_map_file, std::optional<bool>(false)) << "no MAP_FILE, no guest_memfd by file";
    EXPECT_FALSE(g.mappingRules(g.memory().at(*shared)).shared_dma);
    EXPECT_EQ(g.mappedBytes(g.memory().at(*shared)), 0U);
}

}  // namespace
}  // namespace tio::test
