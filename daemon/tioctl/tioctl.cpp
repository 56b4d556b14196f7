// tioctl: the admin CLI. Talks to the guests' admin door on the system bus.
//   tioctl list                 guests with state, platform and device count
//   tioctl show GUEST           the guest's devices with TDI states, vIOMMUs, memory
//   tioctl dump GUEST           DumpState as JSON (protobuf's JSON printer, wire/message_text.hpp)
//   tioctl teardown GUEST       unwind the guest (uid 0 or a policy admin)
#include <sdbus-c++/sdbus-c++.h>

#include <cstdio>
#include <string>

#include "common/bus_names.hpp"
#include "tio/Device1-proxy.h"
#include "tio/Guest1-proxy.h"
#include "tio/Memory1-proxy.h"
#include "tio/VIommu1-proxy.h"
#include "tio/v1/guest_snapshot.pb.h"
#include "wire/message_text.hpp"

namespace {

constexpr std::string_view kPrefix = tio::kGuestBusNamePrefix;

class Guest final : public sdbus::ProxyInterfaces<org::tio::Guest1_proxy> {
public:
    Guest(sdbus::IConnection& c, const std::string& name)
        : ProxyInterfaces(c, std::string(kPrefix) + name, "/org/tio/Guest1") {
        registerProxy();
    }
    ~Guest() { unregisterProxy(); }

private:
    void onMemoryRevoked(const uint64_t&, const uint64_t&, const std::string&) override {}
    void onFault(const sdbus::ObjectPath&, const std::string&, const std::string&) override {}
};

template <typename Iface>
class Child final : public sdbus::ProxyInterfaces<Iface> {
public:
    Child(sdbus::IConnection& c, const std::string& name, const std::string& path)
        : sdbus::ProxyInterfaces<Iface>(c, std::string(kPrefix) + name, path) {
        this->registerProxy();
    }
    ~Child() { this->unregisterProxy(); }
};

int usage() {
    std::fprintf(stderr, "usage: tioctl list | show GUEST | dump GUEST | teardown GUEST\n");
    return 2;
}

int list(sdbus::IConnection& bus) {
    auto dbus = sdbus::createProxy(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus");
    std::vector<std::string> names;
    dbus->callMethod("ListNames").onInterface("org.freedesktop.DBus").storeResultsTo(names);
    std::printf("%-16s %-14s %-9s %-8s %s\n", "GUEST", "STATE", "PLATFORM", "BACKEND", "DEVICES");
    for (const auto& n : names) {
        if (!n.starts_with(kPrefix)) continue;
        const std::string guest = n.substr(kPrefix.size());
        Guest g(bus, guest);
        std::printf("%-16s %-14s %-9s %-8s %zu\n", guest.c_str(), g.State().c_str(), g.Platform().c_str(),
                    g.Backend().c_str(), g.Devices().size());
    }
    return 0;
}

int show(sdbus::IConnection& bus, const std::string& guest) {
    Guest g(bus, guest);
    std::printf("guest %s: %s, platform %s, backend %s, VM %s, %u VMM connection(s)\n", guest.c_str(),
                g.State().c_str(), g.Platform().c_str(), g.Backend().c_str(),
                g.VmType().empty() ? "-" : g.VmType().c_str(), g.Clients());
    for (const auto& path : g.Devices()) {
        Child<org::tio::Device1_proxy> d(bus, guest, path);
        std::printf(
            "  device %s (%s): attached %s, TDI %s, TSM %s, vDEVICE %s\n", d.Bdf().c_str(), d.VfioDevice().c_str(),
            d.Attached() ? "yes" : "no", d.TdiState().c_str(), d.TsmConnected() ? "connected" : "not connected",
            d.HasVDevice() ? ("virtual id " + std::to_string(d.VirtualId()) + " on " + std::string(d.VIommu())).c_str()
                           : "none");
    }
    for (const auto& path : g.VIommus()) {
        Child<org::tio::VIommu1_proxy> v(bus, guest, path);
        std::printf("  viommu %s: id %u, type %s, %zu vDEVICE(s)\n", path.c_str(), v.Id(), v.Type().c_str(),
                    v.VDevices().size());
    }
    for (const auto& path : g.MemoryRegions()) {
        Child<org::tio::Memory1_proxy> m(bus, guest, path);
        std::printf("  memory %s: gpa 0x%llx size 0x%llx (private 0x%llx, shared 0x%llx)\n", path.c_str(),
                    static_cast<unsigned long long>(m.Gpa()), static_cast<unsigned long long>(m.Size()),
                    static_cast<unsigned long long>(m.PrivateBytes()),
                    static_cast<unsigned long long>(m.SharedBytes()));
    }
    return 0;
}

int dump(sdbus::IConnection& bus, const std::string& guest) {
    Guest g(bus, guest);
    const auto bytes = g.DumpState();
    tio::v1::GuestSnapshot snapshot;
    if (!snapshot.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
        std::fprintf(stderr, "tioctl: the snapshot does not parse\n");
        return 1;
    }
    const auto json = tio::wire::toJson(snapshot);
    if (!json) return 1;
    std::printf("%s", json->c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) return usage();
    const std::string cmd = argv[1];
    if (cmd != "list" && (argc != 3 || !tio::validGuestName(argv[2]))) return usage();
    try {
        auto bus = sdbus::createSystemBusConnection();
        if (cmd == "list") return list(*bus);
        if (cmd == "show") return show(*bus, argv[2]);
        if (cmd == "dump") return dump(*bus, argv[2]);
        if (cmd == "teardown") {
            Guest(*bus, argv[2]).Teardown();
            return 0;
        }
    } catch (const sdbus::Error& e) {
        std::fprintf(stderr, "tioctl: %s: %s\n", e.getName().c_str(), e.getMessage().c_str());
        return 1;
    }
    return usage();
}
