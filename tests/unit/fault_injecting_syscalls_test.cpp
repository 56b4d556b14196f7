#include "kernel/fault_injecting_syscalls.hpp"

#include <gtest/gtest.h>

#include "support/recording_syscalls.hpp"

namespace tio::kernel {
namespace {

using test::RecordingSyscalls;

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
