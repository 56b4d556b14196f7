// KVM through the typed wrappers, on the real /dev/kvm where this machine has one
// (SKIPPED, not passed, where it does not) and on the simulated KVM always: the same
// test body, only the syscall implementation differs.
#include "kernel/kvm.hpp"

#include <fcntl.h>

#include <gtest/gtest.h>

#include "kernel/linux_syscalls.hpp"
#include "kernel/uapi/kvm.hpp"
#include "support/sim_process.hpp"

namespace tio::kernel {
namespace {

constexpr std::uint64_t kMiB = 1ULL << 20U;

class KvmTest : public ::testing::TestWithParam<const char*> {
protected:
    void SetUp() override {
        if (std::string_view(GetParam()) == "host") {
            if (!hostKvmUsable()) GTEST_SKIP() << "/dev/kvm is not usable on this machine (no KVM: nothing to test)";
            sys_ = std::make_unique<LinuxSyscalls>();
        } else {
            sim_ = std::make_unique<test::SimProcess>("tdx");
            sys_ = sim_->connect();
        }
        auto kvm = Kvm::open(*sys_);
        ASSERT_TRUE(kvm) << kvm.error().message;
        kvm_.emplace(std::move(*kvm));
    }
    Syscalls& sys() { return *sys_; }

    std::unique_ptr<test::SimProcess> sim_;
    std::unique_ptr<Syscalls> sys_;
    std::optional<Kvm> kvm_;
};

TEST_P(KvmTest, GuestMemfdMemslotAndPunchHole) {
    auto gmem_cap = kvm_->checkExtension(uapi::KVM_CAP_GUEST_MEMFD);
    ASSERT_TRUE(gmem_cap);
    if (*gmem_cap == 0) GTEST_SKIP() << "kernel without guest_memfd";
    auto vm = kvm_->createVm(VmType::Default);
    ASSERT_TRUE(vm) << vm.error().message;
    auto flags = vm->supportedGuestMemfdFlags();
    ASSERT_TRUE(flags);

    // Without flags: always offered.
    auto plain = vm->createGuestMemfd(4 * kMiB, {});
    ASSERT_TRUE(plain) << plain.error().message;
    // Its size as the kernel sees it: a memslot over all of it binds, one page more does not.
    ASSERT_TRUE(vm->setMemslot(2, 0x300000000ULL, 4 * kMiB, plain->fd(), 0));
    ASSERT_TRUE(vm->deleteMemslot(2));
    EXPECT_FALSE(vm->setMemslot(2, 0x300000000ULL, 4 * kMiB + 4096, plain->fd(), 0));
    // With the mmap flag only where KVM_CAP_GUEST_MEMFD_FLAGS offers it.
    if (flags->mmap) {
        auto mappable = vm->createGuestMemfd(2 * kMiB, {.mmap = true});
        ASSERT_TRUE(mappable) << mappable.error().message;
    } else {
        auto refused = vm->createGuestMemfd(2 * kMiB, {.mmap = true});
        EXPECT_FALSE(refused);
    }
    auto unaligned = vm->createGuestMemfd(4097, {});
    ASSERT_FALSE(unaligned);
    EXPECT_EQ(unaligned.error().sys_errno, EINVAL);

    auto bound = flags->mmap ? vm->createGuestMemfd(4 * kMiB, {.mmap = true}) : vm->createGuestMemfd(4 * kMiB, {});
    ASSERT_TRUE(bound);
    ASSERT_TRUE(vm->setMemslot(0, 0x100000000ULL, 2 * kMiB, bound->fd(), 0)) << "memslot on the guest_memfd";
    auto beyond = vm->setMemslot(1, 0x200000000ULL, 4 * kMiB, bound->fd(), 2 * kMiB);
    ASSERT_FALSE(beyond);
    EXPECT_EQ(beyond.error().sys_errno, EINVAL) << "offset+size beyond the guest_memfd";

    ASSERT_TRUE(punchGuestMemfd(sys(), bound->fd(), 0, 64 * 1024));
    auto misaligned = punchGuestMemfd(sys(), bound->fd(), 100, 4096);
    ASSERT_FALSE(misaligned);
    EXPECT_EQ(misaligned.error().sys_errno, EINVAL);
    ASSERT_TRUE(vm->deleteMemslot(0));
}

TEST_P(KvmTest, ForeignGuestMemfdIsRefused) {
    auto a = kvm_->createVm(VmType::Default);
    auto b = kvm_->createVm(VmType::Default);
    ASSERT_TRUE(a && b);
    auto flags = a->supportedGuestMemfdFlags();
    auto gmem_b = b->createGuestMemfd(2 * kMiB, {.mmap = flags && flags->mmap});
    ASSERT_TRUE(gmem_b);
    auto cross = a->setMemslot(0, 0, 2 * kMiB, gmem_b->fd(), 0);
    ASSERT_FALSE(cross);
    EXPECT_EQ(cross.error().sys_errno, EINVAL) << "a guest_memfd is bound to one VM";
}

TEST_P(KvmTest, KvmVfioDeviceIsOnePerVm) {
    auto vm = kvm_->createVm(VmType::Default);
    ASSERT_TRUE(vm);
    auto dev = vm->createVfioDevice();
    ASSERT_TRUE(dev) << dev.error().message;
    EXPECT_GE(dev->fd(), 0);
}

TEST_P(KvmTest, AdoptProvesTheFdIsAVm) {
    auto vm = kvm_->createVm(VmType::Default);
    ASSERT_TRUE(vm);
    auto copy = vm->duplicateFd();
    ASSERT_TRUE(copy);
    auto adopted = KvmVm::adopt(sys(), std::move(*copy));
    ASSERT_TRUE(adopted) << adopted.error().message;

    UniqueFd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
    ASSERT_TRUE(null_fd);
    auto not_vm = KvmVm::adopt(sys(), std::move(null_fd));
    ASSERT_FALSE(not_vm);
    EXPECT_EQ(not_vm.error().code, Code::InvalidArgument);

    auto gmem = vm->createGuestMemfd(2 * kMiB, {});
    ASSERT_TRUE(gmem);
    auto gmem_copy = gmem->duplicateFd();
    auto not_vm2 = KvmVm::adopt(sys(), std::move(*gmem_copy));
    ASSERT_FALSE(not_vm2);
    EXPECT_EQ(not_vm2.error().code, Code::InvalidArgument);
}

TEST_P(KvmTest, UnsupportedVmTypeIsNotSupported) {
    // A TDX VM exists only on a TDX host (or the TDX-flavoured simulator).
    auto types = kvm_->checkExtension(uapi::KVM_CAP_VM_TYPES);
    ASSERT_TRUE(types);
    auto snp = kvm_->createVm(VmType::Snp);
    if ((static_cast<unsigned long>(*types) & (1UL << uapi::KVM_X86_SNP_VM)) == 0) {
        ASSERT_FALSE(snp);
        EXPECT_EQ(snp.error().code, Code::NotSupported);
    } else {
        EXPECT_TRUE(snp);
    }
}

INSTANTIATE_TEST_SUITE_P(Backends, KvmTest, ::testing::Values("host", "simulated"),
                         [](const auto& p) { return std::string(p.param); });

}  // namespace
}  // namespace tio::kernel
