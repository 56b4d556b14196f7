#include "bus/listen_socket.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tio::bus {

std::expected<UniqueFd, int> listenUnix(const std::string& path, int type, unsigned mode) {
    const std::string tmp = path + ".tmp";
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (tmp.size() >= sizeof addr.sun_path) return std::unexpected(ENAMETOOLONG);
    std::memcpy(addr.sun_path, tmp.c_str(), tmp.size() + 1);
    UniqueFd fd(::socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) return std::unexpected(errno);
    struct stat st {};
    if (::lstat(tmp.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(tmp.c_str());
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) < 0) return std::unexpected(errno);
    if (::chmod(tmp.c_str(), mode) < 0 || ::listen(fd.get(), 64) < 0 || ::rename(tmp.c_str(), path.c_str()) < 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        return std::unexpected(err);
    }
    return fd;
}

}  // namespace tio::bus
