#include "common/directories.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <string>

#include "support/temp_dir.hpp"

namespace tio {
namespace {

class MakeDirectories : public ::testing::Test {
protected:
    static bool isDirectory(const std::string& p) {
        struct stat st {};
        return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    }
    test::TempDir tmp_{"tio-dirs"};
    const std::string& top_ = tmp_.path();
};

TEST_F(MakeDirectories, MakesEachMissingParent) {
    const std::string path = top_ + "/a/b/c";
    ASSERT_TRUE(makeDirectories(path, 0755));
    EXPECT_TRUE(isDirectory(top_ + "/a"));
    EXPECT_TRUE(isDirectory(top_ + "/a/b"));
    EXPECT_TRUE(isDirectory(path));
}

TEST_F(MakeDirectories, AnExistingDirectoryAndATrailingSlashAreFine) {
    ASSERT_TRUE(makeDirectories(top_ + "/a", 0755));
    EXPECT_TRUE(makeDirectories(top_ + "/a", 0755));
    EXPECT_TRUE(makeDirectories(top_ + "/a/", 0755));
    EXPECT_TRUE(makeDirectories(top_, 0755));
}

TEST_F(MakeDirectories, AFileInTheWayIsNotADirectory) {
    const std::string file = top_ + "/file";
    ::close(::open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
    auto made = makeDirectories(file, 0755);
    ASSERT_FALSE(made);
    EXPECT_EQ(made.error(), ENOTDIR);
    made = makeDirectories(file + "/below", 0755);
    ASSERT_FALSE(made);
    EXPECT_EQ(made.error(), ENOTDIR);
    EXPECT_FALSE(isDirectory(file + "/below"));
}

TEST_F(MakeDirectories, SaysWhyAMkdirFailed) {
    // /proc makes no directories, whoever asks (root passes any mode check): ENOENT.
    auto made = makeDirectories("/proc/tio-dirs-test/x", 0755);
    ASSERT_FALSE(made);
    EXPECT_EQ(made.error(), ENOENT);
    made = makeDirectories("", 0755);
    ASSERT_FALSE(made);
    EXPECT_EQ(made.error(), ENOENT);
}

}  // namespace
}  // namespace tio
