// The audit log keeps whole records only: appends read back in order, a short write
// is taken back, and a partial tail left by a crash is cut on open.
#include "audit/audit_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/timestamp.pb.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "support/temp_dir.hpp"

namespace tio::audit {
namespace {

class AuditLogTest : public ::testing::Test {
protected:
    static tio::v1::AuditRecord rec(const std::string& event, const std::string& object) {
        tio::v1::AuditRecord r;
        r.set_guest("vm1");
        r.set_event(event);
        r.set_object(object);
        return r;
    }
    test::TempDir tmp{"tio-audit"};
    const std::string& dir = tmp.path();
};

TEST_F(AuditLogTest, RecordsReadBackInOrderWithTheirTime) {
    auto log = AuditLog::open(dir, "vm1");
    ASSERT_TRUE(log) << log.error().message;
    EXPECT_TRUE(log->append(rec("device-assigned", "0000:3a:00.0")));
    EXPECT_TRUE(log->append(rec("refused", "0000:3b:00.0")));
    auto all = readAuditLog(dir + "/audit/vm1.log");
    ASSERT_TRUE(all);
    ASSERT_EQ(all->size(), 2U);
    EXPECT_EQ((*all)[0].event(), "device-assigned");
    EXPECT_EQ((*all)[1].object(), "0000:3b:00.0");
    EXPECT_GT((*all)[0].time().seconds(), 1700000000);
    EXPECT_EQ(std::filesystem::status(dir + "/audit").permissions() & std::filesystem::perms::all,
              std::filesystem::perms::owner_all);
}

TEST_F(AuditLogTest, AShortWriteLeavesNoPartialRecord) {
    auto log = AuditLog::open(dir, "vm1");
    ASSERT_TRUE(log);
    ASSERT_TRUE(log->append(rec("device-assigned", "a")));
    const auto size = std::filesystem::file_size(log->path());
    // The disk takes 3 bytes and then is full.
    log->setWriteForTesting([](int fd, const void* buf, std::size_t) { return ::write(fd, buf, 3); });
    EXPECT_FALSE(log->append(rec("device-removed", "a")));
    EXPECT_EQ(std::filesystem::file_size(log->path()), size) << "the 3 bytes were taken back";
    log->setWriteForTesting([](int, const void*, std::size_t) -> ssize_t {
        errno = ENOSPC;
        return -1;
    });
    EXPECT_FALSE(log->append(rec("device-removed", "a")));
    log->setWriteForTesting(nullptr);
    EXPECT_TRUE(log->append(rec("teardown", "")));
    auto all = readAuditLog(log->path());
    ASSERT_TRUE(all);
    ASSERT_EQ(all->size(), 2U);
    EXPECT_EQ((*all)[1].event(), "teardown");
}

TEST_F(AuditLogTest, APartialTailFromACrashIsCutOnOpen) {
    {
        auto log = AuditLog::open(dir, "vm1");
        ASSERT_TRUE(log);
        ASSERT_TRUE(log->append(rec("device-assigned", "a")));
    }
    const std::string path = dir + "/audit/vm1.log";
    const auto whole = std::filesystem::file_size(path);
    {
        std::ofstream out(path, std::ios::app | std::ios::binary);
        out << '\x40' << "half a record";  // a length of 64 and 13 bytes of it
    }
    auto log = AuditLog::open(dir, "vm1");
    ASSERT_TRUE(log);
    EXPECT_EQ(std::filesystem::file_size(path), whole);
    ASSERT_TRUE(log->append(rec("teardown", "")));
    auto all = readAuditLog(path);
    ASSERT_TRUE(all);
    EXPECT_EQ(all->size(), 2U);
}

// Past its limit the log moves to GUEST.log.1 and starts again: the files stay
// bounded whatever is appended, and a reader gets the rotated records first.
TEST_F(AuditLogTest, TheLogIsRotatedPastItsLimitAndReadsBackInOrder) {
    constexpr std::uint64_t kLimit = 4096;
    auto log = AuditLog::open(dir, "vm1", kLimit);
    ASSERT_TRUE(log);
    for (int i = 0; i < 500; ++i) ASSERT_TRUE(log->append(rec("refused", std::to_string(i))));
    const std::string path = dir + "/audit/vm1.log";
    EXPECT_LE(std::filesystem::file_size(path), kLimit);
    EXPECT_LE(std::filesystem::file_size(path + ".1"), kLimit);
    auto all = readAuditLog(path);
    ASSERT_TRUE(all);
    ASSERT_GT(all->size(), 10U);
    EXPECT_EQ(all->back().object(), "499");
    for (std::size_t i = 1; i < all->size(); ++i) {
        EXPECT_EQ(std::stoi(all->at(i).object()), std::stoi(all->at(i - 1).object()) + 1) << "in order, no gap";
    }
}

// Start-up finds the tail by walking record lengths: a long log opens with its
// partial tail cut and its records untouched.
TEST_F(AuditLogTest, OpeningALongLogKeepsEveryCompleteRecord) {
    {
        auto log = AuditLog::open(dir, "vm1");
        ASSERT_TRUE(log);
        for (int i = 0; i < 20000; ++i) ASSERT_TRUE(log->append(rec("device-assigned", std::to_string(i))));
    }
    const std::string path = dir + "/audit/vm1.log";
    const auto whole = std::filesystem::file_size(path);
    {
        std::ofstream out(path, std::ios::app | std::ios::binary);
        out << '\x7f' << "cut";
    }
    auto log = AuditLog::open(dir, "vm1");
    ASSERT_TRUE(log);
    EXPECT_EQ(std::filesystem::file_size(path), whole);
    auto all = readAuditLog(path);
    ASSERT_TRUE(all);
    EXPECT_EQ(all->size(), 20000U);
}

// Records written before the daemon moved to the lite runtime held a
// google.protobuf.Timestamp (tio.v1.Timestamp is its wire form) and were delimited
// by protobuf's full-runtime helper: they read back the same, time included.
TEST_F(AuditLogTest, RecordsWithAWellKnownTimestampReadBackWithTheirTime) {
    google::protobuf::Timestamp time;
    time.set_seconds(1765000000);
    time.set_nanos(42);
    std::string body;  // AuditRecord{time = 1: the Timestamp, event = 3: "teardown"}
    {
        google::protobuf::io::StringOutputStream s(&body);
        google::protobuf::io::CodedOutputStream out(&s);
        out.WriteTag((1 << 3) | 2);
        out.WriteVarint32(static_cast<std::uint32_t>(time.ByteSizeLong()));
        ASSERT_TRUE(time.SerializeToCodedStream(&out));
        out.WriteTag((3 << 3) | 2);
        out.WriteVarint32(8);
        out.WriteString("teardown");
    }
    std::filesystem::create_directory(dir + "/audit");
    const std::string path = dir + "/audit/vm1.log";
    {
        std::ofstream file(path, std::ios::binary);
        file << static_cast<char>(body.size()) << body;  // one varint byte: under 128
    }
    ASSERT_LT(body.size(), 128U);
    auto all = readAuditLog(path);
    ASSERT_TRUE(all);
    ASSERT_EQ(all->size(), 1U);
    EXPECT_EQ((*all)[0].event(), "teardown");
    EXPECT_EQ((*all)[0].time().seconds(), 1765000000);
    EXPECT_EQ((*all)[0].time().nanos(), 42);
}

}  // namespace
}  // namespace tio::audit
