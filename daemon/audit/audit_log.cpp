#include "audit/audit_log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

#include "wire/delimited.hpp"

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

namespace {

// The byte length of the complete records at the start of `fd` (`size` bytes long):
// their lengths are walked and their bodies skipped, never parsed (start-up must not
// replay the log). A skip seeks, which passes the end without noticing: hence `size`.
std::uint64_t completeLength(int fd, std::uint64_t size) {
    google::protobuf::io::FileInputStream file(fd);
    google::protobuf::io::CodedInputStream in(&file);
    std::uint64_t complete = 0;
    for (;;) {
        std::uint32_t length = 0;
        if (!in.ReadVarint32(&length)) break;
        if (!in.Skip(static_cast<int>(length))) break;
        const auto end = static_cast<std::uint64_t>(in.CurrentPosition());
        if (end > size) break;
        complete = end;
    }
    return complete;
}

}  // namespace

Result<AuditLog> AuditLog::open(const std::string& state_dir, const std::string& guest, std::uint64_t max_bytes) {
    const std::string dir = state_dir + "/audit";
    if (::mkdir(dir.c_str(), 0700) < 0 && errno != EEXIST) {
        return fail(Code::Internal, "cannot create " + dir + ": " + std::strerror(errno));
    }
    AuditLog log;
    log.path_ = dir + "/" + guest + ".log";
    log.max_bytes_ = max_bytes;
    log.fd_.reset(::open(log.path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600));
    if (!log.fd_) return fail(Code::Internal, "cannot open " + log.path_ + ": " + std::strerror(errno));
    // A record cut short by a crash (power loss after a partial write) is dropped:
    // the log ends at its last complete record.
    const UniqueFd reader(::open(log.path_.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st {};
    if (reader && ::fstat(reader.get(), &st) == 0) {
        const std::uint64_t complete = completeLength(reader.get(), static_cast<std::uint64_t>(st.st_size));
        if (static_cast<std::uint64_t>(st.st_size) != complete) {
            spdlog::warn("audit log {}: dropping a partial record at the end", log.path_);
            (void)::ftruncate(log.fd_.get(), static_cast<off_t>(complete));
        }
    }
    return log;
}

bool AuditLog::rotate() {
    const std::string old = path_ + ".1";
    if (::rename(path_.c_str(), old.c_str()) < 0) return false;
    fd_.reset(::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600));
    return static_cast<bool>(fd_);
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
    const auto delimited = wire::delimited(record);
    if (!delimited) return false;
    const std::string& bytes = *delimited;
    off_t before = ::lseek(fd_.get(), 0, SEEK_END);
    if (before > 0 && static_cast<std::uint64_t>(before) + bytes.size() > max_bytes_) {
        if (!rotate()) {
            spdlog::error("audit log {}: cannot rotate ({})", path_, std::strerror(errno));
            return false;
        }
        before = 0;
    }
    const ssize_t n =
        write_ ? write_(fd_.get(), bytes.data(), bytes.size()) : ::write(fd_.get(), bytes.data(), bytes.size());
    if (n == static_cast<ssize_t>(bytes.size())) return true;
    // Not all of it: take back what did get written, so the file ends on a record.
    if (n > 0 && before >= 0) (void)::ftruncate(fd_.get(), before);
    spdlog::error("audit log {}: record not written ({})", path_, n < 0 ? std::strerror(errno) : "short write");
    return false;
}

Result<std::vector<tio::v1::AuditRecord>> readAuditLog(const std::string& path) {
    std::vector<tio::v1::AuditRecord> out;
    bool any = false;
    for (const std::string& file : {path + ".1", path}) {
        const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        any = true;
        UniqueFd owner(fd);
        google::protobuf::io::FileInputStream in(fd);
        for (;;) {
            tio::v1::AuditRecord r;
            if (!wire::readDelimited(in, r)) break;
            out.push_back(std::move(r));
        }
    }
    if (!any) return fail(Code::NotFound, "cannot read " + path);
    return out;
}

}  // namespace tio::audit
