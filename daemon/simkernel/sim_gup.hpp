#pragma once
// What get_user_pages finds behind a process's virtual address: the file a mapping
// shows and the offset in it. The simulator asks the kernel it runs on
// (/proc/PID/maps of the calling process, whose pid the kernel reported), never the
// caller's word, so IOMMU_IOAS_MAP pins exactly what the caller mapped there.
#include <sys/types.h>

#include <cstdint>
#include <optional>

namespace tio::sim {

struct UserPages {
    dev_t dev = 0;
    ino_t ino = 0;
    std::uint64_t offset = 0;  // of `va` in the file
};

// The file behind [va, va+length) of process `pid`, if one file mapping covers all
// of it; nullopt for unmapped, anonymous or split ranges (GUP would EFAULT on some).
[[nodiscard]] std::optional<UserPages> lookupUserPages(pid_t pid, std::uint64_t va, std::uint64_t length);

}  // namespace tio::sim
