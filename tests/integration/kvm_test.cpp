// Parity: the same test bodies against the real /dev/kvm where this machine has one
// (SKIPPED, with the reason, where it does not) and against the simulated KVM, so
// the simulator cannot drift from the kernel on what this machine can show
// (kernel-as-it-is.md sections 1 and 2): a VM answers only the process that created
// it; guest_memfd file operations and /dev/kvm queries answer anyone; the kernel's
// own names for the files.
#include "kernel/kvm.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "kernel/linux_syscalls.hpp"
#include "kernel/uapi/kvm.hpp"
#include "support/sim_process.hpp"
#include "vmm/kvm_vmm.hpp"

namespace tio::kernel {
namespace {

constexpr std::uint64_t kMiB = 1ULL << 20U;

// Runs `body` in a child process (another mm: what the kernel checks) and returns
// what it returned: one errno per operation, 0 for success.
std::vector<int> inAnotherProcess(const std::function<std::vector<int>()>& body) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return {};
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::close(p[0]);
        const std::vector<int> out = body();
        const auto bytes = static_cast<ssize_t>(out.size() * sizeof(int));
        const bool written = ::write(p[1], out.data(), static_cast<std::size_t>(bytes)) == bytes;
        ::_exit(written ? 0 : 1);
    }
    ::close(p[1]);
    std::vector<int> out(16);
    const ssize_t n = ::read(p[0], out.data(), out.size() * sizeof(int));
    ::close(p[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    out.resize(n > 0 ? static_cast<std::size_t>(n) / sizeof(int) : 0);
    return out;
}

int errnoOf(const SysResult<long>& r) { return r ? 0 : r.error(); }

class KvmParityTest : public ::testing::TestWithParam<const char*> {
protected:
    void SetUp() override {
        if (std::string_view(GetParam()) == "host") {
            if (!hostKvmUsable()) GTEST_SKIP() << "/dev/kvm is not usable on this machine (no KVM: nothing to compare)";
            sys_ = std::make_unique<LinuxSyscalls>();
        } else {
            sim_ = std::make_unique<test::SimProcess>("tdx");
            sys_ = sim_->connect();
        }
        auto kvm = vmm::Kvm::open(*sys_);
        ASSERT_TRUE(kvm) << kvm.error().message;
        kvm_.emplace(std::move(*kvm));
    }
    Syscalls& sys() { return *sys_; }
    // Some hosts' KVM has no guest_memfd at all (KVM_CAP_GUEST_MEMFD 0, the ioctl
    // ENOTTY): nothing of it to compare there.
    [[nodiscard]] bool hasGuestMemfd() {
        auto cap = kvm_->checkExtension(uapi::KVM_CAP_GUEST_MEMFD);
        return cap && *cap != 0;
    }

    std::unique_ptr<test::SimProcess> sim_;
    std::unique_ptr<Syscalls> sys_;
    std::optional<vmm::Kvm> kvm_;
};

TEST_P(KvmParityTest, AVmAnswersOnlyItsCreator) {
    auto vm = kvm_->createVm(VmType::Default);
    ASSERT_TRUE(vm) << vm.error().message;
    auto kvm_vfio = vm->createVfioDevice();
    ASSERT_TRUE(kvm_vfio) << kvm_vfio.error().message;
    // The creator's own calls work.
    ASSERT_TRUE(vm->checkExtension(uapi::KVM_CAP_USER_MEMORY2));
    const int vm_fd = vm->fd();
    const int dev_fd = kvm_vfio->fd();
    const auto answers = inAnotherProcess([&] {
        uapi::kvm_create_guest_memfd g{.size = 2 * kMiB, .flags = 0, .reserved = {}};
        uapi::kvm_device_attr a{
            .flags = 0, .group = uapi::KVM_DEV_VFIO_FILE, .attr = uapi::KVM_DEV_VFIO_FILE_ADD, .addr = 0};
        return std::vector<int>{
            errnoOf(sys().ioctl(vm_fd, uapi::KVM_CHECK_EXTENSION, uapi::KVM_CAP_USER_MEMORY2)),
            errnoOf(sys().ioctl(vm_fd, uapi::KVM_CREATE_GUEST_MEMFD, reinterpret_cast<unsigned long>(&g))),
            errnoOf(sys().ioctl(vm_fd, uapi::KVM_CREATE_VCPU, 0)),
            errnoOf(sys().ioctl(dev_fd, uapi::KVM_HAS_DEVICE_ATTR, reinterpret_cast<unsigned long>(&a))),
        };
    });
    EXPECT_EQ(answers, (std::vector<int>{EIO, EIO, EIO, EIO}))
        << "VM, vCPU creation and KVM-device ioctls from another process";
    // ...and the creator still may.
    auto vcpu = vm->createVcpu(0);
    EXPECT_TRUE(vcpu) << vcpu.error().message;
}

TEST_P(KvmParityTest, GuestMemfdFileOperationsAnswerAnyone) {
    if (!hasGuestMemfd()) GTEST_SKIP() << "this host's KVM has no guest_memfd (KVM_CAP_GUEST_MEMFD is 0)";
    auto vm = kvm_->createVm(VmType::Default);
    ASSERT_TRUE(vm);
    auto gmem = vm->createGuestMemfd(4 * kMiB, {});
    ASSERT_TRUE(gmem) << gmem.error().message;
    const int fd = gmem->fd();
    const auto answers = inAnotherProcess([&] {
        auto info = inspectGuestMemfd(sys(), fd);
        auto punched = punchGuestMemfd(sys(), fd, 0, 64 * 1024);
        // Without KEEP_SIZE a guest_memfd refuses (its size is fixed for life).
        auto grow = sys().fallocate(fd, uapi::kFallocPunchHole, 0, 4096);
        return std::vector<int>{info ? 0 : info.error().sys_errno + 1000, info && info->size == 4 * kMiB ? 0 : 1,
                                punched ? 0 : punched.error().sys_errno, grow ? 0 : grow.error()};
    });
    EXPECT_EQ(answers, (std::vector<int>{0, 0, 0, EOPNOTSUPP}));
}

// A guest_memfd made mappable (GUEST_MEMFD_FLAG_MMAP) is mapped by any process:
// what one writes through its mapping the creator sees through its own.
TEST_P(KvmParityTest, AMappableGuestMemfdMapsInAnyProcess) {
    if (!hasGuestMemfd()) GTEST_SKIP() << "this host's KVM has no guest_memfd (KVM_CAP_GUEST_MEMFD is 0)";
    auto vm = kvm_->createVm(VmType::Default);
    ASSERT_TRUE(vm);
    auto flags = vm->supportedGuestMemfdFlags();
    ASSERT_TRUE(flags);
    if (!flags->mmap || !flags->init_shared) GTEST_SKIP() << "this KVM offers no mappable, shared guest_memfd";
    auto gmem = vm->createGuestMemfd(2 * kMiB, {.mmap = true, .init_shared = true});
    ASSERT_TRUE(gmem) << gmem.error().message;
    auto mine = mapGuestMemfd(sys(), gmem->fd(), 0, 2 * kMiB);
    ASSERT_TRUE(mine && *mine);
    const int fd = gmem->fd();
    const auto answers = inAnotherProcess([&] {
        auto theirs = mapGuestMemfd(sys(), fd, 0, 2 * kMiB);
        if (!theirs || !*theirs) return std::vector<int>{1};
        *reinterpret_cast<volatile std::uint32_t*>(theirs->address() + 4096) = 0x74696f;
        return std::vector<int>{0};
    });
    EXPECT_EQ(answers, std::vector<int>{0});
    EXPECT_EQ(*reinterpret_cast<volatile std::uint32_t*>(mine->address() + 4096), 0x74696fU);
    auto plain = vm->createGuestMemfd(2 * kMiB, {});
    ASSERT_TRUE(plain);
    auto refused = mapGuestMemfd(sys(), plain->fd(), 0, 2 * kMiB);
    ASSERT_TRUE(refused);
    EXPECT_FALSE(*refused) << "without GUEST_MEMFD_FLAG_MMAP: ENODEV";
}

TEST_P(KvmParityTest, DevKvmQueriesAnswerAnyone) {
    auto direct = kvm_->checkExtension(uapi::KVM_CAP_VM_TYPES);
    ASSERT_TRUE(direct);
    const auto answers = inAnotherProcess([&] {
        auto kvm = KvmSystem::open(sys());
        if (!kvm) return std::vector<int>{kvm.error().sys_errno + 1000};
        auto types = kvm->checkExtension(uapi::KVM_CAP_VM_TYPES);
        return std::vector<int>{types ? 0 : types.error().sys_errno, types ? static_cast<int>(*types) : -1};
    });
    EXPECT_EQ(answers, (std::vector<int>{0, static_cast<int>(*direct)}));
}

TEST_P(KvmParityTest, TheKernelNamesAVm) {
    auto vm = kvm_->createVm(VmType::Default);
    ASSERT_TRUE(vm);
    auto vm_id = sys().identify(vm->fd());
    ASSERT_TRUE(vm_id);
    EXPECT_EQ(vm_id->link, kVmFileName);
    // The daemon's check goes by that name, never by a VM ioctl.
    ASSERT_TRUE(KvmVm::adopt(sys(), std::move(*vm->duplicateFd())));
    UniqueFd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
    auto not_vm = KvmVm::adopt(sys(), std::move(null_fd));
    ASSERT_FALSE(not_vm);
    EXPECT_EQ(not_vm.error().code, Code::InvalidArgument);
    auto kvm = KvmSystem::open(sys());
    ASSERT_TRUE(kvm);
    EXPECT_FALSE(inspectGuestMemfd(sys(), vm->fd())) << "a VM is no guest_memfd";
}

TEST_P(KvmParityTest, TheKernelNamesAGuestMemfd) {
    if (!hasGuestMemfd()) GTEST_SKIP() << "this host's KVM has no guest_memfd (KVM_CAP_GUEST_MEMFD is 0)";
    auto vm = kvm_->createVm(VmType::Default);
    ASSERT_TRUE(vm);
    auto gmem = vm->createGuestMemfd(2 * kMiB, {});
    ASSERT_TRUE(gmem);
    auto gmem_id = sys().identify(gmem->fd());
    ASSERT_TRUE(gmem_id);
    EXPECT_EQ(gmem_id->link, kGuestMemfdFileName);
    EXPECT_TRUE(inspectGuestMemfd(sys(), gmem->fd()));
    EXPECT_FALSE(KvmVm::adopt(sys(), std::move(*gmem->duplicateFd()))) << "a guest_memfd is no VM";
}

TEST_P(KvmParityTest, GuestMemfdSizesAndMemslots) {
    if (!hasGuestMemfd()) GTEST_SKIP() << "this host's KVM has no guest_memfd (KVM_CAP_GUEST_MEMFD is 0)";
    auto vm = kvm_->createVm(VmType::Default);
    ASSERT_TRUE(vm);
    auto unaligned = vm->createGuestMemfd(4097, {});
    ASSERT_FALSE(unaligned);
    EXPECT_EQ(unaligned.error().sys_errno, EINVAL);
    auto huge = vm->createGuestMemfd(1ULL << 63U, {});
    ASSERT_FALSE(huge);
    EXPECT_EQ(huge.error().sys_errno, EINVAL) << "above LLONG_MAX is a negative loff_t";
    auto plain = vm->createGuestMemfd(4 * kMiB, {});
    ASSERT_TRUE(plain) << plain.error().message;
    // Its size as the kernel sees it: a memslot over all of it binds, one page more does not.
    ASSERT_TRUE(vm->setMemslot(2, 0x300000000ULL, 4 * kMiB, plain->fd(), 0));
    ASSERT_TRUE(vm->deleteMemslot(2));
    auto beyond = vm->setMemslot(2, 0x300000000ULL, 4 * kMiB + 4096, plain->fd(), 0);
    ASSERT_FALSE(beyond);
    EXPECT_EQ(beyond.error().sys_errno, EINVAL);
    // A guest_memfd is bound to one VM.
    auto other = kvm_->createVm(VmType::Default);
    ASSERT_TRUE(other);
    auto cross = other->setMemslot(0, 0, 2 * kMiB, plain->fd(), 0);
    ASSERT_FALSE(cross);
    EXPECT_EQ(cross.error().sys_errno, EINVAL);
    auto misaligned = punchGuestMemfd(sys(), plain->fd(), 100, 4096);
    ASSERT_FALSE(misaligned);
    EXPECT_EQ(misaligned.error().sys_errno, EINVAL);
}

TEST_P(KvmParityTest, UnsupportedVmTypeIsNotSupported) {
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

INSTANTIATE_TEST_SUITE_P(Backends, KvmParityTest, ::testing::Values("host", "simulated"),
                         [](const auto& p) { return std::string(p.param); });

}  // namespace
}  // namespace tio::kernel
