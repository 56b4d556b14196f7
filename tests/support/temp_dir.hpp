#pragma once
// A fresh directory for one test, removed with all it holds when the test ends.
#include <stdlib.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <utility>

namespace tio::test {

class TempDir {
public:
    // Under gtest's temporary directory (TEST_TMPDIR, else /tmp), named PREFIX-XXXXXX.
    explicit TempDir(const std::string& prefix) {
        std::string name = ::testing::TempDir() + prefix + "-XXXXXX";
        if (::mkdtemp(name.data()) == nullptr) throw std::runtime_error("mkdtemp " + name + " failed");
        path_ = std::move(name);
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
