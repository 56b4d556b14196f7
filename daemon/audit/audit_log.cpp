#include "audit/audit_log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>
#include <google/protobuf/util/delimited_message_util.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

namespace tio::audit {
namespace {

// key=value, the value quoted when it holds a space or a quote.
void field(std::ostringstream& o, const char* key, const std::string& value) {
    if (value.empty()) return;
    o << ' ' << key << '=';
    if (value.find_first_of(" \"=") == std::string::npos) {
        o << value;
        return;
    }
    o << '"';
    for (char c : value) {
        if (c == '"' || c == '\\') o << '\\';
        o << c;
    }
    o << '"';
}

std::string journalLine(const tio::v1::AuditRecord& r) {
    std::ostringstream o;
    o << "event=" << r.event();
    field(o, "guest", r.guest());
    field(o, "method", r.method());
    if (r.has_peer()) {
        o << " peer_uid=" << r.peer_uid() << " peer_pid=" << r.peer_pid();
        field(o, "door", r.door());
    }
    field(o, "object", r.object());
    field(o, "detail", r.detail());
    field(o, "error", r.error());
    return o.str();
}

}  // namespace

Result<AuditLog> AuditLog::open(const std::string& state_dir, const std::string& guest) {
    const std::string dir = state_dir + "/audit";
    if (::mkdir(dir.c_str(), 0700) < 0 && errno != EEXIST) {
        return fail(Code::Internal, "cannot create " + dir + ": " + std::strerror(errno));
    }
    AuditLog log;
    log.path_ = dir + "/" + guest + ".log";
    log.fd_.reset(::open(log.path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600));
    if (!log.fd_) return fail(Code::Internal, "cannot open " + log.path_ + ": " + std::strerror(errno));
    // A record cut short by a crash (power loss after a partial write) is dropped:
    // the log ends at its last complete record.
    auto records = readAuditLog(log.path_);
    if (records) {
        std::string complete;
        for (const auto& r : *records) {
            google::protobuf::io::StringOutputStream out(&complete);
            google::protobuf::util::SerializeDelimitedToZeroCopyStream(r, &out);
        }
        struct stat st {};
        if (::fstat(log.fd_.get(), &st) == 0 && static_cast<std::size_t>(st.st_size) != complete.size()) {
            spdlog::warn("audit log {}: dropping a partial record at the end", log.path_);
            (void)::ftruncate(log.fd_.get(), static_cast<off_t>(complete.size()));
        }
    }
    return log;
}

bool AuditLog::append(tio::v1::AuditRecord record) {
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    record.mutable_time()->set_seconds(std::chrono::duration_cast<std::chrono::seconds>(now).count());
    record.mutable_time()->set_nanos(
        static_cast<std::int32_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count() % 1000000000));
    const std::string line = journalLine(record);
    if (record.event() == "refused" || record.event().starts_with("policy-") || record.event() == "tdi-error") {
        spdlog::warn("{}", line);
    } else {
        spdlog::info("{}", line);
    }
    if (!fd_) return true;
    std::string bytes;
    {
        google::protobuf::io::StringOutputStream out(&bytes);
        if (!google::protobuf::util::SerializeDelimitedToZeroCopyStream(record, &out)) return false;
    }
    const off_t before = ::lseek(fd_.get(), 0, SEEK_END);
    const ssize_t n =
        write_ ? write_(fd_.get(), bytes.data(), bytes.size()) : ::write(fd_.get(), bytes.data(), bytes.size());
    if (n == static_cast<ssize_t>(bytes.size())) return true;
    // Not all of it: take back what did get written, so the file ends on a record.
    if (n > 0 && before >= 0) (void)::ftruncate(fd_.get(), before);
    spdlog::error("audit log {}: record not written ({})", path_, n < 0 ? std::strerror(errno) : "short write");
    return false;
}

Result<std::vector<tio::v1::AuditRecord>> readAuditLog(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(Code::NotFound, "cannot read " + path);
    UniqueFd owner(fd);
    google::protobuf::io::FileInputStream in(fd);
    std::vector<tio::v1::AuditRecord> out;
    for (;;) {
        tio::v1::AuditRecord r;
        bool clean_eof = false;
        if (!google::protobuf::util::ParseDelimitedFromZeroCopyStream(&r, &in, &clean_eof)) break;
        out.push_back(std::move(r));
    }
    return out;
}

}  // namespace tio::audit
