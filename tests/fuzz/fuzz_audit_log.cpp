// An audit log file (length-delimited tio.v1.AuditRecord), as tioctl and the daemon's
// start-up read it.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "audit/audit_log.hpp"
#include "common/unique_fd.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    tio::UniqueFd file(::memfd_create("fuzz-audit", MFD_CLOEXEC));
    if (!file || ::write(file.get(), data, size) != static_cast<ssize_t>(size)) return 0;
    (void)tio::audit::readAuditLog("/proc/self/fd/" + std::to_string(file.get()));
    return 0;
}
