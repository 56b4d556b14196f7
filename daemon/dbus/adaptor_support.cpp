#include <cstring>

#include "dbus/adaptors.hpp"

namespace tio::dbus {

Result<Options> readOptions(sd_bus_message* m, bool allow_flags, bool allow_type) {
    Options o;
    if (sd_bus_message_enter_container(m, 'a', "{sv}") < 0) return std::unexpected(malformed());
    // A bound on what a client can make us hold (style B.4 item 7).
    constexpr int kMaxOptions = 16;
    int count = 0;
    for (;;) {
        const int r = sd_bus_message_enter_container(m, 'e', "sv");
        if (r < 0) return std::unexpected(malformed());
        if (r == 0) break;
        if (++count > kMaxOptions) return fail(Code::InvalidArgument, "too many options");
        const char* key = nullptr;
        if (sd_bus_message_read(m, "s", &key) < 0) return std::unexpected(malformed());
        const std::string k = key;
        if (k == "flags" && allow_flags) {
            if (sd_bus_message_enter_container(m, 'v', "as") < 0)
                return fail(Code::InvalidArgument, "flags: must be as");
            char** strv = nullptr;
            if (sd_bus_message_read_strv(m, &strv) < 0) return std::unexpected(malformed());
            for (char** s = strv; s != nullptr && *s != nullptr; ++s) {
                o.flags.emplace_back(*s);
                free(*s);
            }
            free(strv);
            if (o.flags.size() > kMaxOptions) return fail(Code::InvalidArgument, "too many flags");
        } else if (k == "type" && allow_type) {
            if (sd_bus_message_enter_container(m, 'v', "s") < 0) return fail(Code::InvalidArgument, "type: must be s");
            const char* t = nullptr;
            if (sd_bus_message_read(m, "s", &t) < 0) return std::unexpected(malformed());
            o.type = t;
        } else {
            return fail(Code::InvalidArgument, "unknown option '" + k + "'");
        }
        // Out of the variant, then out of the dict entry.
        if (sd_bus_message_exit_container(m) < 0) return std::unexpected(malformed());
        if (sd_bus_message_exit_container(m) < 0) return std::unexpected(malformed());
    }
    if (sd_bus_message_exit_container(m) < 0) return std::unexpected(malformed());
    return o;
}

Result<UniqueFd> readFd(sd_bus_message* m) {
    int fd = -1;
    if (sd_bus_message_read(m, "h", &fd) < 0) return std::unexpected(malformed());
    auto copy = UniqueFd::duplicateOf(fd);
    if (!copy) return fail(Code::LimitExceeded, "cannot take the fd (out of file descriptors)");
    return std::move(*copy);
}

}  // namespace tio::dbus
