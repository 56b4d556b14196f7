#include "core/rollback.hpp"

#include <gtest/gtest.h>

#include <string>

namespace tio::core {
namespace {

TEST(Rollback, UndoesInReverseUnlessCommitted) {
    std::string log;
    {
        Rollback r;
        r.add([&] { log += "a"; });
        r.add([&] { log += "b"; });
    }
    EXPECT_EQ(log, "ba");
    log.clear();
    {
        Rollback r;
        r.add([&] { log += "a"; });
        r.commit();
    }
    EXPECT_EQ(log, "");
}

}  // namespace
}  // namespace tio::core
