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
        ASSERT_TRUE(g.createVm(trusted(), kernel::VmType::Sim));
        auto gmem = g.createGuestMemory(trusted(), 16 * kMiB, {});
        ASSERT_TRUE(gmem);
        gmem_ = std::move(*gmem);
        ASSERT_TRUE(g.addMemory(trusted(), kGuestRamGpa, 4 * kMiB, dup(), 0, MemoryState::Shared));
        auto up = bringUp(g, kDevA, Stage::Bound, 9);
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
            [&] { return g.addMemory(trusted(), gpa, 0, dup(), 0, MemoryState::Shared); });
    refused("unaligned gpa", Code::InvalidArgument,
            [&] { return g.addMemory(trusted(), gpa + 1, kMiB, dup(), 0, MemoryState::Shared); });
    refused("unaligned size", Code::InvalidArgument,
            [&] { return g.addMemory(trusted(), gpa, kMiB + 512, dup(), 0, MemoryState::Shared); });
    refused("unaligned offset", Code::InvalidArgument,
            [&] { return g.addMemory(trusted(), gpa, kMiB, dup(), 100, MemoryState::Shared); });
    refused("gpa overflow", Code::InvalidArgument,
            [&] { return g.addMemory(trusted(), 0xfffffffffffff000ULL, 0x2000, dup(), 0, MemoryState::Shared); });
    refused("offset overflow", Code::InvalidArgument,
            [&] { return g.addMemory(trusted(), gpa, 0x2000, dup(), 0xfffffffffffff000ULL, MemoryState::Shared); });
    refused("overlap", Code::InvalidArgument, [&] {
        return g.addMemory(trusted(), kGuestRamGpa + kMiB, 4 * kMiB, dup(), 8 * kMiB, MemoryState::Shared);
    });
    refused("beyond the guest_memfd", Code::InvalidArgument,
            [&] { return g.addMemory(trusted(), gpa, 8 * kMiB, dup(), 12 * kMiB, MemoryState::Shared); });
    refused("guest_memfd range used twice", Code::InvalidArgument,
            [&] { return g.addMemory(trusted(), gpa, 4 * kMiB, dup(), 0, MemoryState::Shared); });
    refused("guest memory size 0", Code::InvalidArgument, [&] { return g.createGuestMemory(trusted(), 0, {}); });
    refused("guest memory unaligned", Code::InvalidArgument, [&] { return g.createGuestMemory(trusted(), 4097, {}); });
    refused("unaligned size with the mmap flag", Code::InvalidArgument,
            [&] { return g.createGuestMemory(trusted(), 1, {.mmap = true}); });
}

TEST_F(BadInputTest, WrongFdTypesAreInvalidArgument) {
    const std::uint64_t gpa = kGuestRamGpa + 64 * kMiB;
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd pipe_w(p[1]);
    refused("pipe", Code::InvalidArgument,
            [&] { return g.addMemory(trusted(), gpa, kMiB, UniqueFd(p[0]), 0, MemoryState::Shared); });
    refused("memfd", Code::InvalidArgument, [&] {
        return g.addMemory(trusted(), gpa, kMiB, UniqueFd(::memfd_create("x", MFD_CLOEXEC)), 0, MemoryState::Shared);
    });
    refused("/dev/null", Code::InvalidArgument, [&] {
        return g.addMemory(trusted(), gpa, kMiB, UniqueFd(::open("/dev/null", O_RDWR | O_CLOEXEC)), 0,
                           MemoryState::Shared);
    });
    refused("closed fd", Code::InvalidArgument,
            [&] { return g.addMemory(trusted(), gpa, kMiB, UniqueFd(), 0, MemoryState::Shared); });
    refused("the VM fd itself", Code::InvalidArgument, [&] {
        return g.addMemory(trusted(), gpa, kMiB, std::move(*g.vm()->vm.duplicateFd()), 0, MemoryState::Shared);
    });

    // A guest_memfd of another VM (from another guest) is not this guest's memory.
    auto sys2 = rig.sim.connect();
    core::Guest other({.name = "vm2", .platform = Platform::Tdx, .claim_dir = rig.claim_dir}, *sys2, anyDevice("vm2"));
    ASSERT_TRUE(other.createVm(trusted(), kernel::VmType::Sim));
    auto foreign = other.createGuestMemory(trusted(), 4 * kMiB, {});
    ASSERT_TRUE(foreign);
    refused("foreign guest_memfd", Code::InvalidArgument,
            [&] { return g.addMemory(trusted(), gpa, kMiB, std::move(*foreign), 0, MemoryState::Shared); });
    // A real VM (the other guest's) on a guest that has one already: the guest's
    // state refuses it, whatever the fd.
    refused("attach a second VM", Code::InvalidState,
            [&] { return g.attachVm(trusted(), std::move(*other.vm()->vm.duplicateFd()), kernel::VmType::Default); });
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
    auto gm = g.createGuestMemory(trusted(), kMiB, {});
    ASSERT_TRUE(gm);
    auto r2 = fresh.attachVm(trusted(), std::move(*gm), kernel::VmType::Default);
    ASSERT_FALSE(r2);
    EXPECT_EQ(r2.error().code, Code::InvalidArgument);
    EXPECT_EQ(fresh.state(), core::GuestState::Empty);
    // A real VM fd (here: this guest's VM, duplicated) is accepted.
    ASSERT_TRUE(fresh.attachVm(trusted(), std::move(*g.vm()->vm.duplicateFd()), kernel::VmType::Default));
    EXPECT_EQ(fresh.state(), core::GuestState::Active);
}

TEST_F(BadInputTest, DeviceAndTdiArgumentsAreChecked) {
    refused("unknown device", Code::NotFound, [&] { return g.addDevice(trusted(), *Bdf::parse("0000:99:00.0")); });
    // A second device, set up outside the check: only the refused call is measured.
    auto other = g.addDevice(trusted(), *Bdf::parse(kDevB));
    ASSERT_TRUE(other);
    refused("duplicate virtual id", Code::InvalidArgument,
            [&] { return g.createVdevice(trusted(), *other, viommu_, 9); });
    ASSERT_TRUE(g.removeDevice(trusted(), *other));
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
    refused("unknown info request", Code::Kernel,
            [&] { return g.guestRequest(trusted(), dev_, core::GuestRequestScope::Info, unknown_info); });
}

}  // namespace
}  // namespace tio::test
