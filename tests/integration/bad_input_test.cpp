// Bad input always gets a named error and changes nothing: neither the model nor the
// kernel (asked through the simulator's object and file counts).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "support/bring_up.hpp"
#include "support/guest_rig.hpp"
#include "support/model_of.hpp"
#include "support/trusted_caller.hpp"

namespace tio::test {
namespace {

using core::MemoryState;

class BadInputTest : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(rig.vmm.attachTo(g));
        auto gmem = rig.vmm.guestMemfd(16 * kMiB);
        ASSERT_TRUE(gmem);
        gmem_ = std::move(*gmem);
        ASSERT_TRUE(rig.vmm.bindMemory(kGuestRamGpa, 4 * kMiB, gmem_.get()));
        ASSERT_TRUE(g.addMemory(trusted(), kGuestRamGpa, 4 * kMiB, dup(), 0, MemoryState::Shared, std::nullopt));
        auto up = bringUp(g, rig.vmm, kDevA, Stage::Bound, 9);
        ASSERT_TRUE(up) << up.error().message;
        dev_ = up->device;
        viommu_ = up->viommu;
    }
    UniqueFd dup() { return std::move(*gmem_.duplicate()); }

    // Runs `call`, which must fail with `code`, and checks nothing changed.
    template <typename F>
    void refused(const char* what, Code code, F&& call) {
        SCOPED_TRACE(what);
        const auto model = modelOf(g);
        const auto objects = rig.sim.counter("objects");
        auto r = call();
        ASSERT_FALSE(r) << what << " was accepted";
        EXPECT_EQ(r.error().code, code) << r.error().message;
        EXPECT_FALSE(r.error().message.empty());
        EXPECT_EQ(modelOf(g), model);
        EXPECT_EQ(rig.sim.counter("objects"), objects);
    }

    GuestRig rig{"tdx"};
    core::Guest& g = *rig.guest;
    UniqueFd gmem_;
    core::ObjectId dev_ = 0;
    core::ObjectId viommu_ = 0;
};

TEST_F(BadInputTest, MemoryRangesAreCheckedBeforeTheKernelSeesThem) {
    const std::uint64_t gpa = kGuestRamGpa + 64 * kMiB;
    refused("zero size", Code::InvalidArgument,
            [&] { return g.addMemory(trusted(), gpa, 0, dup(), 0, MemoryState::Shared, std::nullopt); });
    refused("unaligned gpa", Code::InvalidArgument,
            [&] { return g.addMemory(trusted(), gpa + 1, kMiB, dup(), 0, MemoryState::Shared, std::nullopt); });
    refused("unaligned size", Code::InvalidArgument,
            [&] { return g.addMemory(trusted(), gpa, kMiB + 512, dup(), 0, MemoryState::Shared, std::nullopt); });
    refused("unaligned offset", Code::InvalidArgument,
            [&] { return g.addMemory(trusted(), gpa, kMiB, dup(), 100, MemoryState::Shared, std::nullopt); });
    refused("gpa overflow", Code::InvalidArgument, [&] {
        return g.addMemory(trusted(), 0xfffffffffffff000ULL, 0x2000, dup(), 0, MemoryState::Shared, std::nullopt);
    });
    refused("offset overflow", Code::InvalidArgument, [&] {
        return g.addMemory(trusted(), gpa, 0x2000, dup(), 0xfffffffffffff000ULL, MemoryState::Shared, std::nullopt);
    });
    refused("overlap", Code::InvalidArgument, [&] {
        return g.addMemory(trusted(), kGuestRamGpa + kMiB, 4 * kMiB, dup(), 8 * kMiB, MemoryState::Shared,
                           std::nullopt);
    });
    refused("beyond the guest_memfd", Code::InvalidArgument,
            [&] { return g.addMemory(trusted(), gpa, 8 * kMiB, dup(), 12 * kMiB, MemoryState::Shared, std::nullopt); });
    // TDX: the shared bit (bit 47 for this 48-bit guest) is no guest memory's address.
    refused("at the shared alias bit", Code::InvalidArgument, [&] {
        return g.addMemory(trusted(), 1ULL << 47U, kMiB, dup(), 8 * kMiB, MemoryState::Shared, std::nullopt);
    });
    refused("across the shared alias bit", Code::InvalidArgument, [&] {
        return g.addMemory(trusted(), (1ULL << 47U) - 4096, 8192, dup(), 8 * kMiB, MemoryState::Shared, std::nullopt);
    });
    refused("guest_memfd range used twice", Code::InvalidArgument,
            [&] { return g.addMemory(trusted(), gpa, 4 * kMiB, dup(), 0, MemoryState::Shared, std::nullopt); });
    refused("deprecated CreateGuestMemory", Code::NotSupported, [&] { return g.createGuestMemory(trusted()); });
    refused("deprecated CreateVm", Code::NotSupported, [&] { return g.createVm(trusted()); });
}

// The separate model's shared backing is checked like the guest_memfd: by the
// kernel's name for it, and its size. (Only where the kernel has the separate model.)
TEST(SeparateBackingTest, SharedBackingMustBeAMemfdLargeEnough) {
    GuestRig rig{"tdx", "7.3"};
    core::Guest& g = *rig.guest;
    ASSERT_TRUE(rig.vmm.attachTo(g));
    ASSERT_EQ(g.vm()->model, core::MemoryModel::Separate);
    auto gmem = rig.vmm.guestMemory(kGuestRamGpa, 4 * kMiB);
    ASSERT_TRUE(gmem);
    UniqueFd small = TestVmm::sharedMemory(2 * kMiB);
    ASSERT_TRUE(small);
    auto attempt = [&](UniqueFd shared, std::uint64_t offset) {
        const auto model = modelOf(g);
        auto r = g.addMemory(trusted(), kGuestRamGpa, 4 * kMiB, std::move(*gmem->duplicate()), 0, MemoryState::Shared,
                             core::SharedBacking{std::move(shared), offset});
        if (!r) {
            EXPECT_EQ(modelOf(g), model);
        }
        return r;
    };
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd pipe_w(p[1]);
    auto pipe = attempt(UniqueFd(p[0]), 0);
    ASSERT_FALSE(pipe);
    EXPECT_EQ(pipe.error().code, Code::InvalidArgument) << "a pipe is no memfd";
    auto too_small = attempt(std::move(*small.duplicate()), 0);
    ASSERT_FALSE(too_small);
    EXPECT_EQ(too_small.error().code, Code::InvalidArgument) << too_small.error().message;
    auto unaligned = attempt(std::move(*small.duplicate()), 100);
    ASSERT_FALSE(unaligned);
    EXPECT_EQ(unaligned.error().code, Code::InvalidArgument);
    ASSERT_EQ(::ftruncate(small.get(), 4 * kMiB), 0);
    EXPECT_TRUE(attempt(std::move(small), 0)) << "a memfd as large as the range";
}

TEST(SeparateBackingTest, InPlaceKernelsRefuseASharedBacking) {
    GuestRig rig{"tdx", "proposed"};
    core::Guest& g = *rig.guest;
    ASSERT_TRUE(rig.vmm.attachTo(g));
    ASSERT_EQ(g.vm()->model, core::MemoryModel::InPlace);
    auto gmem = rig.vmm.guestMemory(kGuestRamGpa, 4 * kMiB);
    ASSERT_TRUE(gmem);
    UniqueFd shared = TestVmm::sharedMemory(4 * kMiB);
    ASSERT_TRUE(shared);
    auto r = g.addMemory(trusted(), kGuestRamGpa, 4 * kMiB, std::move(*gmem), 0, MemoryState::Shared,
                         core::SharedBacking{std::move(shared), 0});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Code::InvalidArgument);
    EXPECT_TRUE(g.memory().empty());
}

TEST_F(BadInputTest, WrongFdTypesAreInvalidArgument) {
    const std::uint64_t gpa = kGuestRamGpa + 64 * kMiB;
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd pipe_w(p[1]);
    refused("pipe", Code::InvalidArgument,
            [&] { return g.addMemory(trusted(), gpa, kMiB, UniqueFd(p[0]), 0, MemoryState::Shared, std::nullopt); });
    refused("memfd", Code::InvalidArgument, [&] {
        return g.addMemory(trusted(), gpa, kMiB, UniqueFd(::memfd_create("x", MFD_CLOEXEC)), 0, MemoryState::Shared,
                           std::nullopt);
    });
    refused("/dev/null", Code::InvalidArgument, [&] {
        return g.addMemory(trusted(), gpa, kMiB, UniqueFd(::open("/dev/null", O_RDWR | O_CLOEXEC)), 0,
                           MemoryState::Shared, std::nullopt);
    });
    refused("closed fd", Code::InvalidArgument,
            [&] { return g.addMemory(trusted(), gpa, kMiB, UniqueFd(), 0, MemoryState::Shared, std::nullopt); });
    refused("the VM fd itself", Code::InvalidArgument, [&] {
        return g.addMemory(trusted(), gpa, kMiB, std::move(*rig.vmm.vmFd()), 0, MemoryState::Shared, std::nullopt);
    });
    // A guest_memfd of another VM cannot be told from this VM's without a VM ioctl
    // (which the daemon never issues): the memslot the VMM made decides what it is.

    // Another VM on a guest that has one already: the guest's state refuses it.
    auto sys2 = rig.sim.connect();
    TestVmm other(*sys2);
    refused("attach a second VM", Code::InvalidState,
            [&] { return g.attachVm(trusted(), std::move(*other.vmFd()), kernel::VmType::Default); });
}

TEST_F(BadInputTest, AttachVmChecksTheFdThroughTheKernel) {
    auto sys2 = rig.sim.connect();
    core::Guest fresh({.name = "vm3", .platform = Platform::Tdx, .claim_dir = rig.claim_dir}, *sys2, anyDevice("vm3"));
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd w(p[1]);
    auto r = fresh.attachVm(trusted(), UniqueFd(p[0]), kernel::VmType::Default);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Code::InvalidArgument);
    auto null = fresh.attachVm(trusted(), UniqueFd(::open("/dev/null", O_RDWR | O_CLOEXEC)), kernel::VmType::Default);
    ASSERT_FALSE(null);
    EXPECT_EQ(null.error().code, Code::InvalidArgument) << "the empty guest asks the kernel, which says: not a VM";
    auto r2 = fresh.attachVm(trusted(), dup(), kernel::VmType::Default);
    ASSERT_FALSE(r2);
    EXPECT_EQ(r2.error().code, Code::InvalidArgument) << "a guest_memfd is no VM";
    TestVmm vmm(*sys2);
    auto snp = fresh.attachVm(trusted(), std::move(*vmm.vmFd()), kernel::VmType::Snp);
    ASSERT_FALSE(snp);
    EXPECT_EQ(snp.error().code, Code::InvalidArgument) << "an SNP VM does not fit a TDX guest";
    EXPECT_EQ(fresh.state(), core::GuestState::Empty);
    // A VM fd is accepted.
    ASSERT_TRUE(fresh.attachVm(trusted(), std::move(*vmm.vmFd()), kernel::VmType::Default));
    EXPECT_EQ(fresh.state(), core::GuestState::Active);
}

TEST_F(BadInputTest, DeviceAndTdiArgumentsAreChecked) {
    refused("unknown device", Code::NotFound, [&] { return g.addDevice(trusted(), *Bdf::parse("0000:99:00.0")); });
    // A second device, set up outside the check: only the refused call is measured.
    auto other = bringUp(g, rig.vmm, kDevB, Stage::Device);
    ASSERT_TRUE(other);
    refused("attach twice", Code::InvalidState, [&] { return g.attachDevice(trusted(), other->device); });
    refused("duplicate virtual id", Code::InvalidArgument,
            [&] { return g.createVdevice(trusted(), other->device, viommu_, 9); });
    ASSERT_TRUE(g.removeDevice(trusted(), other->device));
    refused("attach an unknown device", Code::NotFound, [&] { return g.attachDevice(trusted(), 999); });
    const std::uint8_t empty[1] = {};
    refused("empty request", Code::InvalidArgument, [&] {
        return g.guestRequest(trusted(), dev_, core::GuestRequestScope::Info, std::span<const std::uint8_t>(empty, 0));
    });
    const std::vector<std::uint8_t> huge(64 * 1024, 0x81);
    refused("oversized request", Code::InvalidArgument,
            [&] { return g.guestRequest(trusted(), dev_, core::GuestRequestScope::Info, huge); });
    const std::uint8_t two[] = {0x02, 0x02};
    refused("two-byte state change", Code::InvalidArgument,
            [&] { return g.guestRequest(trusted(), dev_, core::GuestRequestScope::StateChange, two); });
    const std::uint8_t bogus[] = {0x07};
    refused("unknown target state", Code::InvalidArgument,
            [&] { return g.guestRequest(trusted(), dev_, core::GuestRequestScope::StateChange, bogus); });
    const std::uint8_t unknown_info[] = {0x10};
    refused("unknown info request", Code::InvalidArgument,
            [&] { return g.guestRequest(trusted(), dev_, core::GuestRequestScope::Info, unknown_info); });
}

// TsmRequest checks the op, the payload size each op takes and the state it needs
// before anything reaches the TSM; what the TSM itself refuses is Kernel.
TEST_F(BadInputTest, TsmRequestsAreCheckedBeforeTheTsm) {
    const auto request = [&](std::string_view op, std::vector<std::uint8_t> payload) {
        return [this, op, payload = std::move(payload)] { return g.tsmRequest(trusted(), dev_, op, payload); };
    };
    refused("unknown op", Code::InvalidArgument, request("lock", {0x01}));
    refused("the daemon's own op", Code::InvalidArgument, request("get-tdi-state", std::vector<std::uint8_t>(16)));
    refused("empty set-tdi-state", Code::InvalidArgument, request("set-tdi-state", {}));
    refused("LOCK is Bind's, not the guest's", Code::InvalidArgument, request("set-tdi-state", {0x01}));
    refused("unknown state", Code::InvalidArgument, request("set-tdi-state", {0x07}));
    refused("short validate-mmio", Code::InvalidArgument, request("validate-mmio", std::vector<std::uint8_t>(8)));
    refused("long object-info", Code::InvalidArgument, request("object-info", std::vector<std::uint8_t>(5)));
    refused("object-read without offset", Code::InvalidArgument, request("object-read", {1, 0, 0, 0}));
    refused("enable-dma with a payload", Code::InvalidArgument, request("enable-dma", {0x01}));
    refused("SEV-TIO's op on TDX", Code::NotSupported, request("enable-dma", {}));
    refused("unaligned MMIO, refused by the TSM", Code::Kernel,
            request("validate-mmio", {1, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0}));
    refused("unknown object, refused by the TSM", Code::Kernel, request("object-info", {9, 0, 0, 0}));
    refused("read past the end, refused by the TSM", Code::Kernel,
            request("object-read", {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0}));
    refused("an unknown device", Code::NotFound,
            [&] { return g.tsmRequest(trusted(), 999, "set-tdi-state", std::vector<std::uint8_t>{0}); });
}

}  // namespace
}  // namespace tio::test
