#pragma once
// A fresh directory for one test, removed with all it holds when the test ends.
#include <stdlib.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <utility>

namespace tio::test {

class TempDir {
public:
    // Under `parent` (with its trailing slash; by default gtest's temporary directory:
    // TEST_TMPDIR, else /tmp/), named PREFIX-XXXXXX, with `mode`. A directory that will
    // hold unix sockets passes "/tmp/": their paths must fit sun_path's 108 bytes.
    explicit TempDir(const std::string& prefix, mode_t mode = 0700, const std::string& parent = ::testing::TempDir()) {
        std::string name = parent + prefix + "-XXXXXX";
        if (::mkdtemp(name.data()) == nullptr) throw std::runtime_error("mkdtemp " + name + " failed");
        path_ = std::move(name);
        if (mode != 0700 && ::chmod(path_.c_str(), mode) != 0) {
            std::error_code ec;
            std::filesystem::remove_all(path_, ec);
            throw std::runtime_error("chmod " + path_ + " failed");
        }
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() {
        std::error_code ec;  // a test that left it unremovable has failed already
        std::filesystem::remove_all(path_, ec);
    }
    [[nodiscard]] const std::string& path() const { return path_; }

private:
    std::string path_;
};

}  // namespace tio::test
