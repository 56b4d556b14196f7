#pragma once
// The audit trail (architecture.md section 7): every record goes to the journal as
// one structured line (spdlog; the journald sink when the journal is there) and,
// when a state directory is given, to STATE/audit/GUEST.log as a length-delimited
// tio.v1.AuditRecord. A record is written with one write(2) on an O_APPEND fd; a
// short write is cut back off, so a reader never meets a partial record.
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
    // Also STATE/audit/GUEST.log (the directory is created 0700).
    [[nodiscard]] static Result<AuditLog> open(const std::string& state_dir, const std::string& guest);

    // Journals and appends `record` (its time is set here). False when the file
    // could not take it; the journal line is written regardless.
    bool append(tio::v1::AuditRecord record);

    [[nodiscard]] const std::string& path() const { return path_; }
    void setWriteForTesting(WriteFn fn) { write_ = std::move(fn); }

private:
    UniqueFd fd_;
    std::string path_;
    WriteFn write_;
};

// Reads every complete record of a log (tests, tioctl).
[[nodiscard]] Result<std::vector<tio::v1::AuditRecord>> readAuditLog(const std::string& path);

}  // namespace tio::audit
