// The kernel wrappers (the daemon's Linux code path) against a real tio-simkernel
// process; every expectation about the kernel is asked of the simulator.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <cstring>

#include "kernel/features.hpp"
#include "kernel/iommufd.hpp"
#include "kernel/kvm.hpp"
#include "kernel/pci_sysfs.hpp"
#include "kernel/tdisp.hpp"
#include "kernel/tsm.hpp"
#include "kernel/uapi/kvm.hpp"
#include "kernel/vfio_device.hpp"
#include "support/eventually.hpp"
#include "support/fd_count.hpp"
#include "support/sim_process.hpp"
#include "support/test_vmm.hpp"
#include "vmm/kvm_vmm.hpp"

namespace tio::kernel {
namespace {

using test::eventually;
using test::SimProcess;

constexpr std::uint64_t kMiB = 1ULL << 20U;

// A VM of this process (the test is the VMM).
vmm::Vm newVm(Syscalls& sys) {
    auto kvm = vmm::Kvm::open(sys);
    EXPECT_TRUE(kvm) << kvm.error().message;
    auto v = kvm->createVm(VmType::Default);
    EXPECT_TRUE(v) << v.error().message;
    return std::move(*v);
}

class SimKernelTest : public ::testing::Test {
protected:
    SimProcess sim{"tdx", {"0000:3a:00.0", "0000:3b:00.0", "0000:3c:00.0,notdisp"}};
    std::unique_ptr<SimSyscalls> sys = sim.connect();

    vmm::Vm vm() { return newVm(*sys); }
    VfioDevice device(const char* bdf) {
        PciSysfs sysfs(*sys);
        auto cdev = sysfs.vfioCdev(*Bdf::parse(bdf));
        EXPECT_TRUE(cdev) << cdev.error().message;
        auto d = VfioDevice::open(*sys, cdev->path, cdev->rdev);
        EXPECT_TRUE(d) << d.error().message;
        return std::move(*d);
    }
    bool settledAt(std::uint64_t files, std::uint64_t objects) {
        return eventually([&] { return sim.counter("open_files") == files && sim.counter("objects") == objects; });
    }
};

TEST_F(SimKernelTest, LastCloseReleasesTheFileAndItsObjects) {
    {
        auto ictx = Iommufd::open(*sys);
        ASSERT_TRUE(ictx);
        auto ioas = ictx->allocIoas();
        ASSERT_TRUE(ioas);
        EXPECT_EQ(*ioas, 1U) << "ids start at 1 (xarray ALLOC1)";
        ASSERT_TRUE(ictx->allocIoas());
        EXPECT_EQ(sim.counter("open_files"), 1U);
        EXPECT_EQ(sim.counter("objects"), 2U);
    }
    EXPECT_TRUE(settledAt(0, 0)) << "iommufd_fops_release destroys every object";
}

TEST_F(SimKernelTest, DuplicatedFdKeepsTheFileAlive) {
    auto ictx = Iommufd::open(*sys);
    ASSERT_TRUE(ictx);
    UniqueFd copy(::fcntl(ictx->fd(), F_DUPFD_CLOEXEC, 3));
    ASSERT_TRUE(ictx->allocIoas());
    ictx = std::unexpected(Error{});  // closes the original
    EXPECT_FALSE(eventually([&] { return sim.counter("open_files") == 0; }, std::chrono::milliseconds(100)));
    copy.reset();
    EXPECT_TRUE(settledAt(0, 0));
}

TEST_F(SimKernelTest, DestroyIsRefusedWhileReferencedAndUnmapNeverSplitsAnArea) {
    auto v = vm();
    auto gmem = v.createGuestMemfd(8 * kMiB, {});
    ASSERT_TRUE(gmem) << gmem.error().message;
    auto ictx = Iommufd::open(*sys);
    ASSERT_TRUE(ictx);
    const auto ioas = *ictx->allocIoas();
    ASSERT_TRUE(ictx->mapFile(ioas, gmem->fd(), 0, 4 * kMiB, 0x100000000ULL, true));
    ASSERT_TRUE(ictx->mapFile(ioas, gmem->fd(), 4 * kMiB, 4 * kMiB, 0x200000000ULL, true));

    auto overlap = ictx->mapFile(ioas, gmem->fd(), 0, 4 * kMiB, 0x100200000ULL, true);
    ASSERT_FALSE(overlap);
    EXPECT_EQ(overlap.error().sys_errno, EEXIST);
    auto beyond = ictx->mapFile(ioas, gmem->fd(), 6 * kMiB, 4 * kMiB, 0x300000000ULL, true);
    ASSERT_FALSE(beyond);
    EXPECT_EQ(beyond.error().sys_errno, EINVAL) << "offset+length beyond the guest_memfd";
    auto msi = ictx->mapFile(ioas, gmem->fd(), 0, 4 * kMiB, 0xfec00000ULL, true);
    ASSERT_FALSE(msi);
    EXPECT_EQ(msi.error().sys_errno, EADDRINUSE) << "the MSI window is reserved";

    auto partial = ictx->unmap(ioas, 0x100000000ULL, kMiB);
    ASSERT_FALSE(partial);
    EXPECT_EQ(partial.error().sys_errno, EINVAL) << "no partial unmap of an area";
    auto nothing = ictx->unmap(ioas, 0x900000000ULL, kMiB);
    ASSERT_FALSE(nothing);
    EXPECT_EQ(nothing.error().sys_errno, ENOENT);
    auto whole = ictx->unmap(ioas, 0x100000000ULL, 4 * kMiB);
    ASSERT_TRUE(whole);
    EXPECT_EQ(*whole, 4 * kMiB);

    auto ranges = ictx->iovaRanges(ioas);
    ASSERT_TRUE(ranges);
    ASSERT_EQ(ranges->size(), 2U);
    EXPECT_EQ((*ranges)[0].last, 0xfedfffffULL);

    // A nest-parent HWPT needs a bound device, and pins the IOAS.
    auto dev = device("0000:3a:00.0");
    auto dev_id = dev.bindIommufd(ictx->fd());
    ASSERT_TRUE(dev_id) << dev_id.error().message;
    auto hwpt = ictx->allocNestParentHwpt(*dev_id, ioas);
    ASSERT_TRUE(hwpt);
    const auto maps_before = sim.counter("iopte_map");
    ASSERT_TRUE(ictx->mapFile(ioas, gmem->fd(), 0, 4 * kMiB, 0x400000000ULL, true));
    EXPECT_EQ(sim.counter("iopte_map") - maps_before, 2U) << "2 MiB aligned in IOVA and file: two 2 MiB IOPTEs";

    auto busy = ictx->destroy(ioas);
    ASSERT_FALSE(busy);
    EXPECT_EQ(busy.error().code, Code::Busy);
    auto device_obj = ictx->destroy(*dev_id);
    ASSERT_FALSE(device_obj);
    EXPECT_EQ(device_obj.error().code, Code::Busy) << "DEVICE objects belong to VFIO";
    auto unknown = ictx->destroy(999);
    ASSERT_FALSE(unknown);
    EXPECT_EQ(unknown.error().sys_errno, ENOENT);

    ASSERT_TRUE(dev.attach(*hwpt));
    auto attached = ictx->destroy(*hwpt);
    ASSERT_FALSE(attached);
    EXPECT_EQ(attached.error().code, Code::Busy);
    ASSERT_TRUE(dev.detach());
    ASSERT_TRUE(ictx->destroy(*hwpt));
    // Ids are the lowest free one (xa_alloc): the HWPT's comes back.
    auto again = ictx->allocIoas();
    ASSERT_TRUE(again);
    EXPECT_EQ(*again, *hwpt);
    ASSERT_TRUE(ictx->destroy(*again));
    ASSERT_TRUE(ictx->destroy(ioas));
}

TEST_F(SimKernelTest, VdeviceRulesAndTombstoneOnDeviceClose) {
    auto v = vm();
    auto kv = v.createVfioDevice();
    ASSERT_TRUE(kv);
    auto ictx = Iommufd::open(*sys);
    const auto ioas = *ictx->allocIoas();
    auto a = device("0000:3a:00.0");
    auto b = device("0000:3b:00.0");
    ASSERT_TRUE(kv->addFile(a.fd()));
    ASSERT_TRUE(kv->addFile(b.fd()));
    auto dup = kv->addFile(a.fd());
    ASSERT_FALSE(dup);
    EXPECT_EQ(dup.error().sys_errno, EEXIST);
    auto not_vfio = kv->addFile(ictx->fd());
    ASSERT_FALSE(not_vfio);
    EXPECT_EQ(not_vfio.error().sys_errno, EINVAL) << "KVM-VFIO refuses iommufd fds";

    const auto da = *a.bindIommufd(ictx->fd());
    const auto db = *b.bindIommufd(ictx->fd());
    const auto hwpt = *ictx->allocNestParentHwpt(da, ioas);
    ASSERT_TRUE(a.attach(hwpt));
    ASSERT_TRUE(b.attach(hwpt));
    auto viommu = ictx->allocViommu(da, hwpt, viommuTypeFor(Platform::Tdx, true));
    ASSERT_TRUE(viommu) << viommu.error().message;
    // A vDEVICE on a TSM vIOMMU binds, which needs each function's DSM connected.
    ASSERT_TRUE(Tsm(*sys).connect(*Bdf::parse("0000:3a:00.0")));
    ASSERT_TRUE(Tsm(*sys).connect(*Bdf::parse("0000:3b:00.0")));
    auto wrong_type = ictx->allocViommu(da, hwpt, 0);
    ASSERT_FALSE(wrong_type);
    EXPECT_EQ(wrong_type.error().code, Code::NotSupported) << "type DEFAULT is EOPNOTSUPP";

    auto va = ictx->allocVdevice(*viommu, da, 0x10);
    ASSERT_TRUE(va);
    auto second = ictx->allocVdevice(*viommu, da, 0x11);
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error().sys_errno, EEXIST) << "one vDEVICE per device";
    auto same_virt = ictx->allocVdevice(*viommu, db, 0x10);
    ASSERT_FALSE(same_virt);
    EXPECT_EQ(same_virt.error().sys_errno, EEXIST) << "virt_id unique per vIOMMU";
    auto busy = ictx->destroy(*viommu);
    ASSERT_FALSE(busy);
    EXPECT_EQ(busy.error().code, Code::Busy);

    // Closing the device file force-destroys its vDEVICE and tombstones the id. KVM-VFIO
    // holds a reference on the file, so it must let go first (as in the kernel).
    ASSERT_TRUE(kv->removeFile(a.fd()));
    a = device("0000:3b:00.0");  // replaces (closes) the first device's fd
    ASSERT_TRUE(settledAt(5, 4)) << "IOAS, HWPT, device b, vIOMMU remain";
    auto gone = ictx->destroy(*va);
    ASSERT_FALSE(gone);
    EXPECT_EQ(gone.error().sys_errno, ENOENT);
    ASSERT_TRUE(ictx->destroy(*viommu)) << "the vIOMMU is free again";
    // The tombstoned id is not reused until the iommufd closes; the other free ids
    // are, the lowest first (xa_alloc).
    std::vector<std::uint32_t> ids;
    for (int i = 0; i < 3; ++i) ids.push_back(*ictx->allocIoas());
    EXPECT_EQ(ids, (std::vector<std::uint32_t>{da, *viommu, *va + 1}));
}

// RFC v7: a vDEVICE on a TSM vIOMMU binds (the TSM's device context, not LOCK), which
// needs the VM and a connected DSM; LOCK, RUN and STOP are SET_TDI_STATE requests.
TEST_F(SimKernelTest, VdeviceOnATsmViommuBindsWithTheVmAndAConnectedDsm) {
    auto v = vm();
    auto kv = v.createVfioDevice();
    auto ictx = Iommufd::open(*sys);
    const auto ioas = *ictx->allocIoas();
    auto a = device("0000:3a:00.0");
    auto b = device("0000:3b:00.0");
    ASSERT_TRUE(kv->addFile(a.fd()));  // b is never FILE_ADDed: its vIOMMU has no VM
    const auto da = *a.bindIommufd(ictx->fd());
    const auto db = *b.bindIommufd(ictx->fd());
    const auto hwpt = *ictx->allocNestParentHwpt(da, ioas);
    ASSERT_TRUE(a.attach(hwpt));
    ASSERT_TRUE(b.attach(hwpt));
    const auto va_viommu = *ictx->allocViommu(da, hwpt, viommuTypeFor(Platform::Tdx, true));
    const auto vb_viommu = *ictx->allocViommu(db, hwpt, viommuTypeFor(Platform::Tdx, true));

    auto no_vm = ictx->allocVdevice(vb_viommu, db, 2);
    ASSERT_FALSE(no_vm);
    EXPECT_EQ(no_vm.error().sys_errno, ENODEV);
    auto no_tsm = ictx->allocVdevice(va_viommu, da, 1);
    ASSERT_FALSE(no_tsm);
    EXPECT_EQ(no_tsm.error().sys_errno, EINVAL) << "no TSM link before tsm/connect";

    Tsm tsm(*sys);
    const Bdf bdf = *Bdf::parse("0000:3a:00.0");
    EXPECT_EQ(*tsm.connectedTo(bdf), "");
    ASSERT_TRUE(tsm.connect(bdf));
    EXPECT_EQ(*tsm.connectedTo(bdf), "tsm0");
    EXPECT_TRUE(tsm.connect(bdf)) << "connected already (EBUSY) counts as done";

    const auto va = *ictx->allocVdevice(va_viommu, da, 1);
    EXPECT_EQ(*tsm.bound(bdf), "tsm0") << "the vDEVICE bound";
    EXPECT_EQ(sim.tdiState("0000:3a:00.0"), "unlocked") << "binding is not LOCK";

    const auto arch = tvmArchFor(Platform::Tdx);
    const auto setState = [&](std::uint8_t state) {
        const std::uint8_t req[] = {state};
        return *ictx->tsmRequest(va, TsmOp::SetTdiState, arch, req, 0);
    };
    const auto stateNow = [&] {
        auto ans = *ictx->tsmRequest(va, TsmOp::GetTdiState, arch, tdispGetInterfaceState(bdf), 64);
        EXPECT_EQ(ans.error, 0);
        return parseInterfaceState(ans.response, bdf);
    };
    const std::uint8_t lock[] = {1};
    auto wrong_arch = *ictx->tsmRequest(va, TsmOp::SetTdiState, tvmArchFor(Platform::Cca), lock, 0);
    EXPECT_EQ(wrong_arch.error, EINVAL) << "the TSM refuses another architecture";
    auto sev_only = *ictx->tsmRequest(va, TsmOp::SevEnableDma, arch, {}, 0);
    EXPECT_EQ(sev_only.error, EOPNOTSUPP);
    EXPECT_EQ(setState(1).error, 0);
    EXPECT_EQ(sim.tdiState("0000:3a:00.0"), "locked");
    EXPECT_EQ(*stateNow(), TdispState::ConfigLocked);
    EXPECT_EQ(setState(2).error, 0);
    EXPECT_EQ(sim.tdiState("0000:3a:00.0"), "run");
    auto run_again = setState(2);
    EXPECT_EQ(run_again.error, EINVAL) << "RUN only from LOCKED";
    EXPECT_NE(run_again.tsm_code, 0U) << "the TSM says why";

    sim.configWrite("0000:3a:00.0");
    EXPECT_EQ(*stateNow(), TdispState::Error);
    EXPECT_EQ(sim.counter("tdi_errors"), 1U);
    EXPECT_EQ(setState(0).error, 0);
    EXPECT_EQ(sim.tdiState("0000:3a:00.0"), "unlocked");
    EXPECT_EQ(*tsm.bound(bdf), "tsm0") << "STOP keeps the context";
    ASSERT_TRUE(ictx->destroy(va));
    EXPECT_EQ(*tsm.bound(bdf), "") << "destroying the vDEVICE unbinds";
}

// The evidence objects: whole objects in chunks, generations that LOCK and
// regenerate advance, and a commit whose copy-back fails (InjectFailure EFAULT).
TEST_F(SimKernelTest, TsmServesEvidenceAndCanLoseAnAnswerAfterCommitting) {
    auto v = vm();
    auto kv = v.createVfioDevice();
    auto ictx = Iommufd::open(*sys);
    const auto ioas = *ictx->allocIoas();
    auto a = device("0000:3a:00.0");
    ASSERT_TRUE(kv->addFile(a.fd()));
    const auto da = *a.bindIommufd(ictx->fd());
    const auto hwpt = *ictx->allocNestParentHwpt(da, ioas);
    ASSERT_TRUE(a.attach(hwpt));
    const Bdf bdf = *Bdf::parse("0000:3a:00.0");
    ASSERT_TRUE(Tsm(*sys).connect(bdf));
    const auto viommu = *ictx->allocViommu(da, hwpt, viommuTypeFor(Platform::Tdx, true));
    const auto va = *ictx->allocVdevice(viommu, da, 1);
    const auto arch = tvmArchFor(Platform::Tdx);
    const auto info = [&](std::uint32_t object) {
        std::uint8_t req[4];
        std::memcpy(req, &object, 4);
        auto ans = *ictx->tsmRequest(va, TsmOp::ObjectInfo, arch, req, 16);
        std::uint64_t out[2] = {0, 0};
        if (ans.error == 0 && ans.response.size() == 16) std::memcpy(out, ans.response.data(), 16);
        return std::make_pair(ans.error, std::array<std::uint64_t, 2>{out[0], out[1]});
    };
    auto certs = info(1);
    ASSERT_EQ(certs.first, 0);
    EXPECT_GT(certs.second[0], 64U * 1024U) << "larger than one answer: readers must page";
    EXPECT_EQ(info(3).first, EINVAL) << "no interface report before LOCK";

    const std::uint8_t lock[] = {1};
    const auto before = info(2).second[1];
    ASSERT_EQ(ictx->tsmRequest(va, TsmOp::SetTdiState, arch, lock, 0)->error, 0);
    EXPECT_EQ(info(2).second[1], before + 1) << "LOCK takes the measurements anew";
    std::uint8_t regen[4] = {1, 0, 0, 0};
    ASSERT_EQ(ictx->tsmRequest(va, TsmOp::ObjectRegenerate, arch, regen, 0)->error, 0);
    EXPECT_EQ(info(1).second[1], certs.second[1] + 1);

    // Commit, then lose the answer: the TSM ran (the TDI is in RUN), the caller saw EFAULT.
    sim.injectFailure("IOMMU_VDEVICE_TSM_REQ", 1, "EFAULT");
    const std::uint8_t run[] = {2};
    auto lost = *ictx->tsmRequest(va, TsmOp::SetTdiState, arch, run, 0);
    EXPECT_EQ(lost.error, EFAULT);
    EXPECT_EQ(sim.tdiState("0000:3a:00.0"), "run");
}

TEST_F(SimKernelTest, SysfsNamesTheCdevAndRefusesUnknownFunctions) {
    PciSysfs sysfs(*sys);
    auto cdev = sysfs.vfioCdev(*Bdf::parse("0000:3b:00.0"));
    ASSERT_TRUE(cdev);
    EXPECT_EQ(cdev->name, "vfio1");
    EXPECT_EQ(cdev->path, "/dev/vfio/devices/vfio1");
    // Named (a snapshot's name): the same cdev; a stale or bad name finds the real one.
    for (const std::string name : {"vfio1", "vfio0", "vfio7", "../vfio1", ""}) {
        auto named = sysfs.vfioCdev(*Bdf::parse("0000:3b:00.0"), name);
        ASSERT_TRUE(named) << name;
        EXPECT_EQ(named->name, "vfio1") << name;
        EXPECT_EQ(named->rdev, cdev->rdev) << name;
    }
    auto missing = sysfs.vfioCdev(*Bdf::parse("0000:99:00.0"));
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code, Code::NotFound);
    EXPECT_TRUE(*Tsm(*sys).tdispCapable(*Bdf::parse("0000:3a:00.0")));
    EXPECT_FALSE(*Tsm(*sys).tdispCapable(*Bdf::parse("0000:3c:00.0")));
    // The cdev opened must be the one sysfs names (devt check).
    auto wrong = VfioDevice::open(*sys, "/dev/vfio/devices/vfio0", cdev->rdev);
    ASSERT_FALSE(wrong);
    EXPECT_EQ(wrong.error().code, Code::Busy);
}

// The PCI TSM as merged (6.19): a VF's DSM is its PF's function 0 (physfn) until the
// kernel names it (tsm/dsm); a VF's tsm/ group appears only once the DSM is
// connected; an IDE-only PF0 has a group without `bound`; a devsec TSM refuses
// connect (ENXIO) and an already connected DSM answers EBUSY.
TEST(PciTsm, DsmsVisibilityAndConnectFollowTheMergedRules) {
    SimProcess sim{"tdx",
                   {"0000:3a:00.0", "0000:3a:02.0,vf-of=0000:3a:00.0", "0000:5e:00.0,ide-only", "0000:3c:00.0,notdisp",
                    "0000:10:00.0", "0000:12:00.0,behind=0000:10:00.0", "0000:12:00.1", "--devsec-tsm"}};
    auto sys = sim.connect();
    Tsm tsm(*sys);
    const Bdf pf = *Bdf::parse("0000:3a:00.0");
    const Bdf vf = *Bdf::parse("0000:3a:02.0");
    EXPECT_EQ(*sys->readLink("/sys/bus/pci/devices/0000:3a:02.0/physfn"), "../0000:3a:00.0");
    EXPECT_EQ(sys->readLink("/sys/bus/pci/devices/0000:3a:00.0/physfn").error(), ENOENT) << "a PF has none";
    EXPECT_EQ(*tsm.dsmOf(vf), pf) << "the PF's function 0, not function 0 of the VF's own slot";
    EXPECT_EQ(*tsm.dsmOf(pf), pf);
    EXPECT_EQ(sys->listDirectory("/sys/bus/pci/devices/0000:3a:02.0/tsm").error(), ENOENT)
        << "a VF's group waits for its DSM";
    EXPECT_TRUE(*tsm.tdispCapable(pf));
    EXPECT_FALSE(*tsm.tdispCapable(*Bdf::parse("0000:5e:00.0"))) << "IDE only: no bound";
    EXPECT_TRUE(sys->listDirectory("/sys/bus/pci/devices/0000:5e:00.0/tsm")) << "but its group is there";
    EXPECT_FALSE(*tsm.tdispCapable(*Bdf::parse("0000:3c:00.0")));

    EXPECT_EQ(sys->writeAttribute("/sys/bus/pci/devices/0000:3a:00.0/tsm/connect", "tsm0").error(), ENXIO)
        << "tsm0 is a devsec TSM";
    ASSERT_TRUE(tsm.connect(pf)) << "the link TSM after the devsec one";
    EXPECT_EQ(*tsm.connectedTo(pf), "tsm1");
    EXPECT_EQ(sys->writeAttribute("/sys/bus/pci/devices/0000:3a:00.0/tsm/connect", "tsm1").error(), EBUSY);
    EXPECT_TRUE(tsm.connect(pf)) << "already connected counts as done";
    auto group = sys->listDirectory("/sys/bus/pci/devices/0000:3a:02.0/tsm");
    ASSERT_TRUE(group);
    EXPECT_EQ(*group, (std::vector<std::string>{"bound", "dsm"}));
    EXPECT_EQ(*sys->readAttribute("/sys/bus/pci/devices/0000:3a:02.0/tsm/dsm"), "0000:3a:00.0\n");
    EXPECT_EQ(*tsm.dsmOf(vf), pf) << "now from tsm/dsm";
    ASSERT_TRUE(tsm.disconnect(pf, "tsm1"));
    EXPECT_EQ(sys->listDirectory("/sys/bus/pci/devices/0000:3a:02.0/tsm").error(), ENOENT);

    // Behind a switch whose upstream port is a DSM: both functions of the endpoint
    // answer to the port, found through the device's place in /sys/devices.
    const Bdf port = *Bdf::parse("0000:10:00.0");
    EXPECT_EQ(*sys->readLink("/sys/bus/pci/devices/0000:12:00.0"),
              "../../../devices/pci0000:00/0000:00:01.0/0000:10:00.0/0000:11:00.0/0000:12:00.0");
    EXPECT_EQ(*tsm.dsmOf(*Bdf::parse("0000:12:00.0")), port);
    EXPECT_EQ(*tsm.dsmOf(*Bdf::parse("0000:12:00.1")), port);
    EXPECT_EQ(*tsm.dsmOf(port), port) << "under a root port: its own";
    EXPECT_TRUE(*tsm.tdispCapable(port));
    EXPECT_EQ(sys->listDirectory("/sys/bus/pci/devices/0000:12:00.0/tsm").error(), ENOENT);
    ASSERT_TRUE(tsm.connect(port));
    EXPECT_EQ(*sys->readAttribute("/sys/bus/pci/devices/0000:12:00.1/tsm/dsm"), "0000:10:00.0\n");
}

TEST_F(SimKernelTest, VfioDeviceIsRestrictedUntilBoundAndBindsOnce) {
    auto d = device("0000:3a:00.0");
    auto early = d.info();
    ASSERT_FALSE(early);
    EXPECT_EQ(early.error().sys_errno, EINVAL);
    auto ictx = Iommufd::open(*sys);
    auto bad = d.bindIommufd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    ASSERT_FALSE(bad);
    ASSERT_TRUE(d.bindIommufd(ictx->fd()));
    auto info = d.info();
    ASSERT_TRUE(info);
    EXPECT_EQ(info->num_regions, 9U);
    auto other = device("0000:3a:00.0");
    auto taken = other.bindIommufd(ictx->fd());
    ASSERT_FALSE(taken);
    EXPECT_EQ(taken.error().code, Code::Busy);
}

TEST_F(SimKernelTest, DmaWalksTheIommu) {
    auto v = vm();
    auto gmem = *v.createGuestMemfd(4 * kMiB, {});
    auto kv = v.createVfioDevice();
    auto ictx = Iommufd::open(*sys);
    const auto ioas = *ictx->allocIoas();
    auto d = device("0000:3a:00.0");
    EXPECT_EQ(sim.dma("0000:3a:00.0", 0x100000, 4096, false), "blocked");
    const auto dev_id = *d.bindIommufd(ictx->fd());
    const auto hwpt = *ictx->allocNestParentHwpt(dev_id, ioas);
    EXPECT_EQ(sim.dma("0000:3a:00.0", 0x100000, 4096, false), "blocked") << "bound but not attached";
    ASSERT_TRUE(d.attach(hwpt));
    EXPECT_EQ(sim.dma("0000:3a:00.0", 0x100000, 4096, false), "iommu-fault");
    // TDX: host-IOMMU DMA carries the shared GPA bit (47 for the simulated GPAW 48);
    // without it the access takes the secure path, which a device not in RUN may not.
    constexpr std::uint64_t kShared = 1ULL << 47U;
    ASSERT_TRUE(ictx->mapFile(ioas, gmem.fd(), 0, 4 * kMiB, kShared | 0x100000, true));
    EXPECT_EQ(sim.dma("0000:3a:00.0", kShared | 0x100000, 4 * kMiB, true), "ok");
    EXPECT_EQ(sim.dma("0000:3a:00.0", kShared | 0x100000, 4 * kMiB + 1, true), "iommu-fault");
    EXPECT_EQ(sim.dma("0000:3a:00.0", 0x100000, 4096, false), "iommu-fault") << "secure path, TDI not in RUN";
    EXPECT_EQ(sim.counter("iommu_faults"), 3U);
}

TEST_F(SimKernelTest, InjectedFailureHitsTheNamedCallOnce) {
    auto ictx = Iommufd::open(*sys);
    sim.injectFailure("IOMMU_IOAS_ALLOC", 2, "ENOMEM");
    EXPECT_EQ(sim.counter("failures_pending"), 1U);
    ASSERT_TRUE(ictx->allocIoas());
    auto second = ictx->allocIoas();
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error().code, Code::Kernel);
    EXPECT_EQ(second.error().message, "IOMMU_IOAS_ALLOC failed: ENOMEM");
    ASSERT_TRUE(ictx->allocIoas());
    EXPECT_EQ(sim.counter("failures_injected"), 1U);
    EXPECT_EQ(sim.counter("failures_pending"), 0U);
    EXPECT_EQ(sim.counter("objects"), 2U) << "the failed call created nothing";
}

TEST_F(SimKernelTest, RealMemfdIsMappableButOtherFilesAreNot) {
    UniqueFd memfd(::memfd_create("guest", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    ASSERT_TRUE(memfd);
    ASSERT_EQ(::ftruncate(memfd.get(), 2 * kMiB), 0);
    auto ictx = Iommufd::open(*sys);
    const auto ioas = *ictx->allocIoas();
    ASSERT_TRUE(ictx->mapFile(ioas, memfd.get(), 0, 2 * kMiB, 0x10000000, true));
    int pipefd[2];
    ASSERT_EQ(::pipe2(pipefd, O_CLOEXEC), 0);
    UniqueFd r(pipefd[0]), w(pipefd[1]);
    auto pipe_map = ictx->mapFile(ioas, r.get(), 0, 2 * kMiB, 0x20000000, true);
    ASSERT_FALSE(pipe_map);
    EXPECT_EQ(pipe_map.error().sys_errno, EINVAL);
    auto self_map = ictx->mapFile(ioas, ictx->fd(), 0, 2 * kMiB, 0x20000000, true);
    ASSERT_FALSE(self_map);
    EXPECT_EQ(self_map.error().sys_errno, EINVAL);
}

// O_NONBLOCK belongs to the file description, which the VMM shares with the daemon
// (fd passing duplicates it); a real ioctl or fallocate ignores it, and so must the
// simulated one, whatever the VMM set.
TEST_F(SimKernelTest, ANonBlockingSharedDescriptionChangesNoSyscall) {
    auto v = vm();
    auto gmem = v.createGuestMemfd(4 * kMiB, {});
    ASSERT_TRUE(gmem);
    auto daemon_copy = gmem->duplicateFd();
    ASSERT_TRUE(daemon_copy);
    ASSERT_EQ(::fcntl(gmem->fd(), F_SETFL, ::fcntl(gmem->fd(), F_GETFL) | O_NONBLOCK), 0);
    ASSERT_NE(::fcntl(daemon_copy->get(), F_GETFL) & O_NONBLOCK, 0) << "one description, one flag";
    for (int i = 0; i < 50; ++i) {
        auto info = inspectGuestMemfd(*sys, daemon_copy->get());
        ASSERT_TRUE(info) << info.error().message;
        EXPECT_EQ(info->size, 4 * kMiB);
        ASSERT_TRUE(punchGuestMemfd(*sys, daemon_copy->get(), 0, 4096));
    }
    ASSERT_EQ(::fcntl(v.fd(), F_SETFL, ::fcntl(v.fd(), F_GETFL) | O_NONBLOCK), 0);
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(v.checkExtension(uapi::KVM_CAP_USER_MEMORY2));
}

// The kernel profiles (architecture.md section 4): each has the uAPI of its kernel
// and refuses the rest as that kernel would.
class ProfileTest : public ::testing::TestWithParam<const char*> {
protected:
    SimProcess sim{"tdx", {"0000:3a:00.0"}, GetParam()};
    std::unique_ptr<SimSyscalls> sys = sim.connect();
    [[nodiscard]] bool is(std::string_view profile) const { return profile == GetParam(); }
    vmm::Vm vm() { return newVm(*sys); }
};

TEST_P(ProfileTest, GuestMemfdInMapFileOnlyWithTheProposedSeries) {
    auto v = vm();
    auto gmem = v.createGuestMemfd(4 * kMiB, {});
    ASSERT_TRUE(gmem);
    auto ictx = Iommufd::open(*sys);
    ASSERT_TRUE(ictx);
    const auto ioas = *ictx->allocIoas();
    auto mapped = ictx->mapFile(ioas, gmem->fd(), 0, 2 * kMiB, 0x10000000, true);
    if (is("proposed")) {
        EXPECT_TRUE(mapped) << mapped.error().message;
    } else {
        ASSERT_FALSE(mapped);
        EXPECT_EQ(mapped.error().sys_errno, EINVAL) << "merged MAP_FILE refuses a guest_memfd";
    }
    auto probed = probeGuestMemfdMapping(*ictx, gmem->fd(), 2 * kMiB);
    ASSERT_TRUE(probed) << probed.error().message;
    EXPECT_EQ(*probed, is("proposed"));
    EXPECT_EQ(sim.counter("objects"), 1U) << "the probe's scratch IOAS is gone";
    // A memfd, the separate model's shared backing, maps on every profile.
    UniqueFd memfd = test::TestVmm::sharedMemory(2 * kMiB);
    EXPECT_TRUE(ictx->mapFile(ioas, memfd.get(), 0, 2 * kMiB, 0x40000000, true));
}

TEST_P(ProfileTest, AttributesLiveWhereTheProfileHasThem) {
    auto v = vm();
    auto gmem = v.createGuestMemfd(4 * kMiB, {});
    ASSERT_TRUE(gmem);
    ASSERT_TRUE(v.setMemslot(0, 0x100000000ULL, 4 * kMiB, gmem->fd(), 0));
    auto in_place = kernelConvertsInPlace(*sys);
    ASSERT_TRUE(in_place);
    EXPECT_EQ(*in_place, !is("7.3")) << "the kvm module parameter of the in-place series";
    auto vm_cap = v.checkExtension(uapi::KVM_CAP_MEMORY_ATTRIBUTES);
    ASSERT_TRUE(vm_cap);
    auto vm_scoped = v.setMemoryAttributes(0x100000000ULL, 2 * kMiB, true);
    auto gmem_scoped = setGuestMemfdAttributes(*sys, gmem->fd(), 0, 2 * kMiB, true);
    if (is("7.3")) {
        EXPECT_EQ(*vm_cap, static_cast<long>(uapi::KVM_MEMORY_ATTRIBUTE_PRIVATE));
        EXPECT_TRUE(vm_scoped) << vm_scoped.error().message;
        ASSERT_FALSE(gmem_scoped);
        EXPECT_EQ(gmem_scoped.error().error.sys_errno, ENOTTY);
    } else {
        EXPECT_EQ(*vm_cap, 0) << "in place, the VM-scoped capability answers 0";
        ASSERT_FALSE(vm_scoped);
        EXPECT_EQ(vm_scoped.error().sys_errno, EINVAL);
        EXPECT_TRUE(gmem_scoped) << gmem_scoped.error().error.message;
        EXPECT_EQ(sim.counter("gmem_attribute_changes"), 1U);
        auto beyond = setGuestMemfdAttributes(*sys, gmem->fd(), 2 * kMiB, 4 * kMiB, false);
        ASSERT_FALSE(beyond);
        EXPECT_EQ(beyond.error().error.sys_errno, EINVAL) << "past the guest_memfd's end";
    }
}

// IOMMU_IOAS_MAP pins what the caller really mapped at the address, as GUP finds it
// (the simulator reads the caller's mappings; the caller's word is not taken), and,
// in place, a page the IOMMU pins so cannot become private: the conversion stops
// there (EAGAIN, error_offset) with the pages before it converted.
TEST_P(ProfileTest, MapByAddressPinsWhatTheCallerMapped) {
    auto v = vm();
    auto gmem = v.createGuestMemfd(4 * kMiB, {.mmap = true, .init_shared = true});
    ASSERT_TRUE(gmem) << gmem.error().message;
    auto unmappable = v.createGuestMemfd(4 * kMiB, {});
    ASSERT_TRUE(unmappable);
    auto no_view = mapGuestMemfd(*sys, unmappable->fd(), 0, 4 * kMiB);
    ASSERT_TRUE(no_view);
    EXPECT_FALSE(*no_view) << "no GUEST_MEMFD_FLAG_MMAP, no mapping (ENODEV)";
    auto view = mapGuestMemfd(*sys, gmem->fd(), 0, 4 * kMiB);
    ASSERT_TRUE(view && *view);
    auto ictx = Iommufd::open(*sys);
    ASSERT_TRUE(ictx);
    const auto ioas = *ictx->allocIoas();
    ASSERT_TRUE(ictx->mapAddress(ioas, view->address() + kMiB, kMiB, 0x10000000, true));
    SharedMapping anonymous(::mmap(nullptr, kMiB, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0), kMiB);
    auto anon = ictx->mapAddress(ioas, anonymous.address(), kMiB, 0x20000000, true);
    ASSERT_FALSE(anon);
    EXPECT_EQ(anon.error().sys_errno, EFAULT) << "not guest memory";
    auto past = ictx->mapAddress(ioas, view->address() + 3 * kMiB, 2 * kMiB, 0x20000000, true);
    ASSERT_FALSE(past);
    EXPECT_EQ(past.error().sys_errno, EFAULT) << "beyond what the caller mapped";
    if (is("7.3")) return;  // the attribute is the VM's there
    auto converted = setGuestMemfdAttributes(*sys, gmem->fd(), 0, 4 * kMiB, true);
    ASSERT_FALSE(converted);
    EXPECT_EQ(converted.error().error.sys_errno, EAGAIN);
    EXPECT_EQ(converted.error().converted, kMiB) << "stopped at the first pinned page";
    if (is("proposed")) {
        // Split, each half still pins by address: the right half alone stops it next.
        ASSERT_TRUE(ictx->splitArea(ioas, 0x10000000 + kMiB / 2));
        ASSERT_TRUE(ictx->unmap(ioas, 0x10000000, kMiB / 2));
        auto again = setGuestMemfdAttributes(*sys, gmem->fd(), kMiB, 3 * kMiB, true);
        ASSERT_FALSE(again);
        EXPECT_EQ(again.error().converted, kMiB / 2) << "stopped at the right half";
        ASSERT_TRUE(ictx->unmap(ioas, 0x10000000 + kMiB / 2, kMiB / 2));
    } else {
        ASSERT_TRUE(ictx->unmap(ioas, 0x10000000, kMiB));
    }
    EXPECT_TRUE(setGuestMemfdAttributes(*sys, gmem->fd(), 0, 4 * kMiB, true)) << "unpinned, it converts";
}

TEST_P(ProfileTest, TheProposedReshapeOnlyWithTheProposedSeries) {
    auto ictx = Iommufd::open(*sys);
    ASSERT_TRUE(ictx);
    auto features = probeFeatures(*sys, *ictx);
    ASSERT_TRUE(features);
    EXPECT_EQ(features->reshape, is("proposed"));
    EXPECT_TRUE(features->map_file);
}

INSTANTIATE_TEST_SUITE_P(Profiles, ProfileTest, ::testing::Values("7.3", "7.4", "proposed"), [](const auto& p) {
    return std::string(p.param) == "7.3"   ? std::string("v7_3")
           : std::string(p.param) == "7.4" ? std::string("v7_4")
                                           : std::string(p.param);
});

}  // namespace
}  // namespace tio::kernel
