#include <systemd/sd-id128.h>

#include <array>
#include <cstring>

#include "dbus/adaptors.hpp"

namespace tio::dbus {

namespace {

bool allows(unsigned allowed, OptionKey key) { return (allowed & static_cast<unsigned>(key)) != 0; }

// Reads the one value of a variant of `type` ("s", "h", "t") into `out`.
template <typename T>
Result<> readVariant(sd_bus_message* m, const char* type, const std::string& key, T* out) {
    if (sd_bus_message_enter_container(m, 'v', type) < 0) {
        return fail(Code::InvalidArgument, key + ": must be " + std::string(type));
    }
    if (sd_bus_message_read_basic(m, type[0], out) < 0) return std::unexpected(malformed());
    return {};
}

}  // namespace

Result<Options> readOptions(sd_bus_message* m, unsigned allowed) {
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
        if (k == "type" && allows(allowed, OptionKey::Type)) {
            const char* t = nullptr;
            if (auto read = readVariant(m, "s", k, &t); !read) return std::unexpected(read.error());
            o.type = t;
        } else if (k == "shared-fd" && allows(allowed, OptionKey::SharedFd)) {
            int fd = -1;
            if (auto read = readVariant(m, "h", k, &fd); !read) return std::unexpected(read.error());
            auto copy = UniqueFd::duplicateOf(fd);
            if (!copy) return fail(Code::LimitExceeded, "cannot take the fd (out of file descriptors)");
            o.shared_fd = std::move(*copy);
        } else if (k == "shared-offset" && allows(allowed, OptionKey::SharedOffset)) {
            std::uint64_t v = 0;
            if (auto read = readVariant(m, "t", k, &v); !read) return std::unexpected(read.error());
            o.shared_offset = v;
        } else if (k == "vf-token" && allows(allowed, OptionKey::VfToken)) {
            const char* text = nullptr;
            if (auto read = readVariant(m, "s", k, &text); !read) return std::unexpected(read.error());
            sd_id128_t id;
            if (sd_id128_from_string(text, &id) < 0) return fail(Code::InvalidArgument, "vf-token is a UUID");
            o.vf_token = std::to_array(id.bytes);
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
