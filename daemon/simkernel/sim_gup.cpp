#include "simkernel/sim_gup.hpp"

#include <sys/sysmacros.h>

#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <string>

namespace tio::sim {

std::optional<UserPages> lookupUserPages(pid_t pid, std::uint64_t va, std::uint64_t length) {
    if (pid <= 0 || length == 0 || va + length < va) return std::nullopt;
    std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
    // start-end perms offset major:minor inode path
    for (std::string line; std::getline(maps, line);) {
        std::uint64_t start = 0, end = 0, offset = 0, inode = 0;
        unsigned major_no = 0, minor_no = 0;
        char perms[5] = {};
        if (std::sscanf(line.c_str(), "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64 " %x:%x %" SCNu64, &start, &end, perms,
                        &offset, &major_no, &minor_no, &inode) != 7) {
            continue;
        }
        if (va < start || va >= end) continue;
        // One mapping must cover the whole range, shared and writable, of a file.
        if (va + length > end || inode == 0 || perms[1] != 'w' || perms[3] != 's') return std::nullopt;
        return UserPages{
            .dev = makedev(major_no, minor_no), .ino = static_cast<ino_t>(inode), .offset = offset + (va - start)};
    }
    return std::nullopt;
}

}  // namespace tio::sim
