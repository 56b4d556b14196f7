#include "kernel/fault_injecting_syscalls.hpp"

#include <gtest/gtest.h>

namespace tio::kernel {
namespace {

// Counts what reaches it; succeeds at everything.
class RecordingSyscalls final : public Syscalls {
public:
    int reached = 0;
    SysResult<UniqueFd> open(const std::string&, int) override { return ++reached, UniqueFd(); }
    SysResult<long> ioctl(int, unsigned long, unsigned long) override { return ++reached, 0L; }
    SysResult<> fallocate(int, int, std::uint64_t, std::uint64_t) override { return ++reached, SysResult<>{}; }
    SysResult<std::string> readAttribute(const std::string&) override { return ++reached, std::string(); }
    SysResult<std::string> readLink(const std::string&) override { return ++reached, std::string(); }
    SysResult<> writeAttribute(const std::string&, const std::string&) override { return ++reached, SysResult<>{}; }
    SysResult<std::vector<std::string>> listDirectory(const std::string&) override {
        return ++reached, std::vector<std::string>();
    }
    SysResult<FdIdentity> identify(int) override { return ++reached, FdIdentity{}; }
    SysResult<SharedMapping> mapShared(int, std::uint64_t, std::uint64_t) override {
        return ++reached, SharedMapping();
    }
};

TEST(FaultInjectingSyscalls, FailsExactlyTheNthCallWithoutReachingTheKernel) {
    RecordingSyscalls inner;
    FaultInjectingSyscalls sys(inner);
    sys.armFailNth(3, ENOMEM);
    EXPECT_TRUE(sys.ioctl(0, 0, 0));
    EXPECT_TRUE(sys.readAttribute("x"));
    EXPECT_FALSE(sys.consumed());
    auto third = sys.open("/dev/iommu", 0);
    ASSERT_FALSE(third);
    EXPECT_EQ(third.error(), ENOMEM);
    EXPECT_TRUE(sys.consumed());
    EXPECT_EQ(inner.reached, 2);
    EXPECT_TRUE(sys.fallocate(0, 0, 0, 0)) << "one injection fails one call";
    EXPECT_EQ(sys.calls(), 4U);
}

TEST(FaultInjectingSyscalls, UnreachedFaultIsNotConsumed) {
    RecordingSyscalls inner;
    FaultInjectingSyscalls sys(inner);
    sys.armFailNth(5, EIO);
    for (int i = 0; i < 4; ++i) EXPECT_TRUE(sys.identify(0));
    EXPECT_FALSE(sys.consumed());
    sys.armFailNth(0, 0);
    for (int i = 0; i < 10; ++i) EXPECT_TRUE(sys.identify(0));
}

}  // namespace
}  // namespace tio::kernel
