// VmClaim: one VM file, one guest, host-wide. Any file stands in for a VM here: what
// is compared is the open file (kcmp), as with the real anon inode "kvm-vm".
#include "host/vm_claim.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "support/temp_dir.hpp"

namespace tio::host {
namespace {

class VmClaimTest : public ::testing::Test {
protected:
    test::TempDir tmp{"vm-claims"};
    const std::string& dir = tmp.path();
    UniqueFd vm{::eventfd(0, EFD_CLOEXEC)};
    UniqueFd other_vm{::eventfd(0, EFD_CLOEXEC)};
};

TEST_F(VmClaimTest, TheSameVmIsBusyForAnotherGuestWhileHeld) {
    auto a = VmClaim::acquire(dir, "a", vm.get());
    ASSERT_TRUE(a) << a.error().message;
    auto copy = vm.duplicate();  // another fd, the same open file: what SCM_RIGHTS gives
    ASSERT_TRUE(copy);
    auto b = VmClaim::acquire(dir, "b", copy->get());
    ASSERT_FALSE(b);
    EXPECT_EQ(b.error().code, Code::Busy);
    EXPECT_NE(b.error().message.find("guest a"), std::string::npos) << b.error().message;
    auto b_other = VmClaim::acquire(dir, "b", other_vm.get());
    EXPECT_TRUE(b_other) << "another VM is free";
}

TEST_F(VmClaimTest, ReleasedWithTheClaim) {
    {
        auto a = VmClaim::acquire(dir, "a", vm.get());
        ASSERT_TRUE(a);
    }
    EXPECT_FALSE(std::filesystem::exists(dir + "/vm.a.claim")) << "taken away with the claim";
    EXPECT_TRUE(VmClaim::acquire(dir, "b", vm.get()));
}

TEST_F(VmClaimTest, ARegistrationNobodyHoldsIsADeadDaemonsAndIgnored) {
    // What a crashed daemon leaves: the file, no flock.
    std::ofstream(dir + "/vm.a.claim") << ::getpid() << " " << vm.get() << "\n";
    EXPECT_TRUE(VmClaim::acquire(dir, "b", vm.get()));
}

}  // namespace
}  // namespace tio::host
