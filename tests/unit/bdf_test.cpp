#include "common/bdf.hpp"

#include <gtest/gtest.h>

namespace tio {
namespace {

TEST(Bdf, ParsesCanonicalForm) {
    const auto b = Bdf::parse("0000:3a:1f.7");
    ASSERT_TRUE(b);
    EXPECT_EQ(b->domain, 0);
    EXPECT_EQ(b->bus, 0x3a);
    EXPECT_EQ(b->device, 0x1f);
    EXPECT_EQ(b->function, 7);
    EXPECT_EQ(b->toString(), "0000:3a:1f.7");
    EXPECT_EQ(b->objectName(), "0000_3a_1f_7");
    EXPECT_EQ(b->dsm().toString(), "0000:3a:1f.0");
}

TEST(Bdf, RoundTripsEveryFunctionOfADevice) {
    for (int f = 0; f < 8; ++f) {
        const std::string s = "ffff:ff:1f." + std::to_string(f);
        ASSERT_TRUE(Bdf::parse(s)) << s;
        EXPECT_EQ(Bdf::parse(s)->toString(), s);
    }
}

// style-and-reliability.md B.4 items 23 and 24: each one refused by the grammar.
TEST(Bdf, RefusesEverythingElse) {
    for (const char* bad : {"", "0000:00:00", "0000:00:1f.8", "10000:00:00.0", "0000:gg:00.0", " 0000:3a:00.0",
                            "0000:3a:00.0 ", "0000:3a:00.0\n", "+000:3a:00.0", "0000:3A:00.0", "0000:3a:20.0",
                            "../../../../etc/shadow", "0000:01:00.0/../../..", "0000:01:00.0/driver/unbind",
                            "/sys/bus/pci/devices/0000:3a:00.0", "0000-3a-00.0", "0000:3a:00:0", "0000:3a.00.0"}) {
        EXPECT_FALSE(Bdf::parse(bad)) << '"' << bad << '"';
    }
    EXPECT_FALSE(Bdf::parse(std::string_view("0000:3a:00.0\0", 13)));
}

}  // namespace
}  // namespace tio
