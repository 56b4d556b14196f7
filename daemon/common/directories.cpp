#include "common/directories.hpp"

#include <sys/stat.h>

#include <cerrno>

namespace tio {

std::expected<void, int> makeDirectories(const std::string& path, mode_t mode) {
    if (path.empty()) return std::unexpected(ENOENT);
    // Each prefix ending before a '/' (the root's own '/' skipped), then the whole path.
    for (std::size_t at = path.find('/', 1);; at = path.find('/', at + 1)) {
        const std::string prefix = path.substr(0, at);
        struct stat st {};
        if (::mkdir(prefix.c_str(), mode) < 0 &&
            !(errno == EEXIST && ::stat(prefix.c_str(), &st) == 0 && S_ISDIR(st.st_mode))) {
            return std::unexpected(errno == EEXIST ? ENOTDIR : errno);
        }
        if (at == std::string::npos) return {};
    }
}

}  // namespace tio
