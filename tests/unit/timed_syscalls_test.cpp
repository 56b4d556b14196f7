#include "kernel/timed_syscalls.hpp"

#include <gtest/gtest.h>

#include <thread>

#include "support/recording_syscalls.hpp"

namespace tio::kernel {
namespace {

using namespace std::chrono_literals;

// A kernel whose sysfs reads take 2 ms and whose ioctls fail.
class SlowSysfs final : public test::RecordingSyscalls {
public:
    SysResult<std::string> readAttribute(const std::string& path) override {
        std::this_thread::sleep_for(2ms);
        return RecordingSyscalls::readAttribute(path);
    }
    SysResult<long> ioctl(int, unsigned long, unsigned long) override { return ++reached, std::unexpected(EBUSY); }
};

TEST(TimedSyscalls, CountsEveryCallAndTheTimeInsideThem) {
    SlowSysfs inner;
    TimedSyscalls sys(inner);
    EXPECT_EQ(sys.calls(), 0U);
    EXPECT_EQ(sys.inside(), TimedSyscalls::Clock::duration::zero());
    const auto start = TimedSyscalls::Clock::now();
    EXPECT_TRUE(sys.open("/dev/iommu", 0));
    EXPECT_TRUE(sys.fallocate(0, 0, 0, 0));
    EXPECT_TRUE(sys.readLink("x"));
    EXPECT_TRUE(sys.writeAttribute("x", "y"));
    EXPECT_TRUE(sys.listDirectory("x"));
    EXPECT_TRUE(sys.identify(0));
    EXPECT_TRUE(sys.mapShared(0, 0, 4096));
    EXPECT_TRUE(sys.readAttribute("x"));
    EXPECT_TRUE(sys.readAttribute("x"));
    const auto failed = sys.ioctl(0, 0, 0);
    const auto outside = TimedSyscalls::Clock::now() - start;
    ASSERT_FALSE(failed);
    EXPECT_EQ(failed.error(), EBUSY) << "the kernel's answer passes through";
    EXPECT_EQ(inner.reached, 10);
    EXPECT_EQ(sys.calls(), 10U) << "a failed call is a call";
    EXPECT_GE(sys.inside(), 4ms) << "two 2 ms reads";
    EXPECT_LE(sys.inside(), outside);
}

}  // namespace
}  // namespace tio::kernel
