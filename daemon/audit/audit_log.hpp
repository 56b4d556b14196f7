#pragma once
// The audit trail (architecture.md section 7): every record goes to the journal as
// one structured line (spdlog; the journald sink when the journal is there) and,
// when a state directory is given, to STATE/audit/GUEST.log as a length-delimited
// tio.v1.AuditRecord. A record is written with one write(2) on an O_APPEND fd; a
// short write is cut back off, so a reader never meets a partial record.
// The file is bounded: past its limit it is rotated to GUEST.log.1 (the one before
// is dropped), so a flood of records cannot fill the disk nor slow the next
// start-up, which walks the current file's record lengths to find its tail and
// parses none of them.
#include <cstdint>
#include <functional>
#include <string>

#include "common/error.hpp"
#include "common/unique_fd.hpp"
#include "tio/v1/audit_record.pb.h"

namespace tio::audit {

class AuditLog {
public:
    // The write(2) the log uses; tests replace it to prove short writes leave no trace.
    using WriteFn = std::function<ssize_t(int fd, const void* buf, std::size_t len)>;

    // Journal lines only.
    AuditLog() = default;
    static constexpr std::uint64_t kDefaultMaxBytes = 8ULL << 20U;
    // Also STATE/audit/GUEST.log (the directory is created 0700), rotated past `max_bytes`.
    [[nodiscard]] static Result<AuditLog> open(const std::string& state_dir, const std::string& guest,
                                               std::uint64_t max_bytes = kDefaultMaxBytes);

    // Journals and appends `record` (its time is set here). False when the file
    // could not take it; the journal line is written regardless.
    bool append(tio::v1::AuditRecord record);

    [[nodiscard]] const std::string& path() const { return path_; }
    void setWriteForTesting(WriteFn fn) { write_ = std::move(fn); }

private:
    // Moves the current file to PATH.1 and starts an empty one.
    bool rotate();

    UniqueFd fd_;
    std::string path_;
    std::uint64_t max_bytes_ = kDefaultMaxBytes;
    WriteFn write_;
};

// Reads every complete record of a log, the rotated file's first (tests, tioctl).
[[nodiscard]] Result<std::vector<tio::v1::AuditRecord>> readAuditLog(const std::string& path);

}  // namespace tio::audit
