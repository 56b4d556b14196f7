// Every method's argument decoding, a{sv} options included, as the guest socket
// serves it: the input's first byte picks a method (path, interface, member and
// signature from daemon/dbus/xml), the rest is its body, sent as a client would on
// a p2p connection and dispatched by sd-bus into the daemon's adaptors. There is no
// kernel (every syscall fails with ENOSYS): what is fuzzed is decoding and the
// checks made before any kernel call; a call that gets further fails as Kernel.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <array>
#include <cstdint>
#include <string>

#include "common/unix_socket.hpp"
#include "core/guest.hpp"
#include "dbus/guest_service.hpp"
#include "kernel/syscalls.hpp"
#include "support/raw_dbus.hpp"

namespace {

using tio::kernel::SysResult;

class NoKernel final : public tio::kernel::Syscalls {
public:
    SysResult<tio::UniqueFd> open(const std::string&, int) override { return std::unexpected(ENOSYS); }
    SysResult<long> ioctl(int, unsigned long, unsigned long) override { return std::unexpected(ENOSYS); }
    SysResult<> fallocate(int, int, std::uint64_t, std::uint64_t) override { return std::unexpected(ENOSYS); }
    SysResult<std::string> readAttribute(const std::string&) override { return std::unexpected(ENOSYS); }
    SysResult<> writeAttribute(const std::string&, const std::string&) override { return std::unexpected(ENOSYS); }
    SysResult<std::string> readLink(const std::string&) override { return std::unexpected(ENOSYS); }
    SysResult<std::vector<std::string>> listDirectory(const std::string&) override { return std::unexpected(ENOSYS); }
    SysResult<tio::kernel::FdIdentity> identify(int) override { return std::unexpected(ENOSYS); }
    SysResult<tio::SharedMapping> mapShared(int, std::uint64_t, std::uint64_t) override {
        return std::unexpected(ENOSYS);
    }
};

struct Method {
    const char* path;
    const char* interface;
    const char* member;
    const char* signature;
};

constexpr const char* kDevice = "/org/tio/Guest1/device/0000_3a_00_0";
constexpr std::array kMethods = {
    Method{kDevice, "org.tio.Device1", "GetVfioFd", ""},
    Method{kDevice, "org.tio.Device1", "Attach", ""},
    Method{kDevice, "org.tio.Device1", "CreateVDevice", "ot"},
    Method{kDevice, "org.tio.Device1", "DestroyVDevice", ""},
    Method{kDevice, "org.tio.Device1", "Bind", ""},
    Method{kDevice, "org.tio.Device1", "TsmRequest", "say"},
    Method{kDevice, "org.tio.Device1", "GetEvidence", "s"},
    Method{kDevice, "org.tio.Device1", "GuestRequest", "say"},
    Method{kDevice, "org.tio.Device1", "Unbind", ""},
    Method{kDevice, "org.tio.Device1", "Reset", ""},
    Method{kDevice, "org.tio.Device1", "Remove", ""},
    Method{"/org/tio/Guest1", "org.tio.Guest1", "CreateVm", "sa{sv}"},
    Method{"/org/tio/Guest1", "org.tio.Guest1", "AttachVm", "ha{sv}"},
    Method{"/org/tio/Guest1", "org.tio.Guest1", "CreateGuestMemory", "ta{sv}"},
    Method{"/org/tio/Guest1", "org.tio.Guest1", "AddMemory", "tthtsa{sv}"},
    Method{"/org/tio/Guest1", "org.tio.Guest1", "ConvertMemory", "tts"},
    Method{"/org/tio/Guest1", "org.tio.Guest1", "ConvertMemoryRanges", "a(tts)"},
    Method{"/org/tio/Guest1", "org.tio.Guest1", "PunchHole", "tt"},
    Method{"/org/tio/Guest1", "org.tio.Guest1", "AddDevice", "sa{sv}"},
    Method{"/org/tio/Guest1", "org.tio.Guest1", "CreateVIommu", "oa{sv}"},
    Method{"/org/tio/Guest1", "org.tio.Guest1", "Teardown", ""},
    Method{"/org/tio/Guest1", "org.tio.Guest1", "DumpState", ""},
    Method{"/org/tio/Guest1/memory/1", "org.tio.Memory1", "Remove", ""},
    Method{"/org/tio/Guest1/viommu/1", "org.tio.VIommu1", "Destroy", ""},
    Method{"/org/tio/Guest1", "org.freedesktop.DBus.Properties", "Get", "ss"},
    Method{"/org/tio/Guest1", "org.freedesktop.DBus.Properties", "Set", "ssv"},
    Method{"/org/tio/Guest1", "org.freedesktop.DBus.Properties", "GetAll", "s"},
};

struct Harness {
    NoKernel sys;
    tio::core::Guest guest{{.name = "fuzz", .platform = tio::Platform::Tdx, .claim_dir = "/tmp/tio-fuzz-claims"},
                           sys,
                           tio::core::Policy::development("fuzz", ::getuid())};
    tio::dbus::GuestService service{guest, "fuzz"};
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static Harness* harness = [] {
        spdlog::set_level(spdlog::level::off);
        return new Harness();
    }();
    if (size == 0) return 0;
    const Method& m = kMethods[data[0] % kMethods.size()];
    const bool takes_fd = std::string_view(m.signature).find('h') != std::string_view::npos;
    std::array<int, 2> pair{};
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair.data()) < 0) return 0;
    tio::UniqueFd client(pair[1]);
    sd_bus* bus = nullptr;
    sd_id128_t id{};
    int r = sd_bus_new(&bus);
    if (r >= 0) r = sd_bus_set_fd(bus, pair[0], pair[0]);
    if (r >= 0) r = sd_bus_set_server(bus, 1, id);
    if (r >= 0) r = sd_bus_negotiate_fds(bus, 1);
    if (r >= 0) r = sd_bus_set_anonymous(bus, 1);
    if (r >= 0) r = sd_bus_start(bus);
    if (r >= 0) r = harness->service.attach(bus, tio::core::Door::Vmm, pair[0]);
    if (r >= 0) {
        tio::test::RawCall call{.serial = 1,
                                .path = m.path,
                                .interface = m.interface,
                                .member = m.member,
                                .signature = m.signature,
                                .body = std::string(reinterpret_cast<const char*>(data + 1), size - 1),
                                .unix_fds = takes_fd ? std::optional<std::uint32_t>(1) : std::nullopt};
        const tio::UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        const int fds[] = {devnull.get()};
        // The lines, then the call once sd-bus has taken BEGIN, as the daemon's
        // server hands them over (bus/p2p_server.hpp).
        const std::string auth = tio::test::RawDbusClient::authLines();
        (void)tio::unixsock::sendSome(client.get(), auth, {});
        while (sd_bus_is_ready(bus) <= 0 && sd_bus_process(bus, nullptr) > 0) {
        }
        (void)tio::unixsock::sendSome(client.get(), tio::test::marshal(call),
                                      takes_fd ? std::span<const int>(fds) : std::span<const int>());
        while (sd_bus_process(bus, nullptr) > 0) {
        }
        harness->service.detached(bus);
    }
    sd_bus_close_unref(bus);
    return 0;
}
