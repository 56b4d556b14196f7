#pragma once
// What a VMM holds: sdbus-c++ proxies generated from the introspection XML, recording
// the signals a VMM would react to, and the D-Bus error name of a failed call.
#include <sdbus-c++/sdbus-c++.h>

#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "common/bus_names.hpp"
#include "tio/Device1-proxy.h"
#include "tio/Guest1-proxy.h"
#include "tio/VIommu1-proxy.h"

namespace tio::test {

// Records the signals a VMM would react to.
class GuestClient final : public sdbus::ProxyInterfaces<org::tio::Guest1_proxy, sdbus::ObjectManager_proxy> {
public:
    // The destination must be the guest's name: sdbus-c++ matches signals on
    // sender=<destination>, and tio-managerd sends as org.tio.Guest1.GUEST.
    explicit GuestClient(sdbus::IConnection& c, const std::string& guest = "vm1")
        : ProxyInterfaces(c, guestBusName(guest), "/org/tio/Guest1") {
        registerProxy();
    }
    ~GuestClient() { unregisterProxy(); }
    std::mutex mu;
    std::set<std::string> added, removed;
    std::vector<std::string> faults;  // "path kind"
    std::vector<std::tuple<std::uint64_t, std::uint64_t, std::string>> revoked;

private:
    void onMemoryRevoked(const uint64_t& gpa, const uint64_t& size, const std::string& reason) override {
        std::lock_guard l(mu);
        revoked.emplace_back(gpa, size, reason);
    }
    void onFault(const sdbus::ObjectPath& path, const std::string& kind, const std::string&) override {
        std::lock_guard l(mu);
        faults.push_back(std::string(path) + " " + kind);
    }
    void onInterfacesAdded(const sdbus::ObjectPath& path,
                           const std::map<std::string, std::map<std::string, sdbus::Variant>>&) override {
        std::lock_guard l(mu);
        added.insert(path);
    }
    void onInterfacesRemoved(const sdbus::ObjectPath& path, const std::vector<std::string>&) override {
        std::lock_guard l(mu);
        removed.insert(path);
    }
};

class DeviceClient final : public sdbus::ProxyInterfaces<org::tio::Device1_proxy, sdbus::Properties_proxy> {
public:
    DeviceClient(sdbus::IConnection& c, const std::string& path) : ProxyInterfaces(c, guestBusName("vm1"), path) {
        registerProxy();
    }
    ~DeviceClient() { unregisterProxy(); }
    std::mutex mu;
    std::vector<std::string> tdi_changes;

private:
    void onPropertiesChanged(const std::string&, const std::map<std::string, sdbus::Variant>& changed,
                             const std::vector<std::string>&) override {
        std::lock_guard l(mu);
        if (auto it = changed.find("TdiState"); it != changed.end())
            tdi_changes.push_back(it->second.get<std::string>());
    }
};

class ViommuClient final : public sdbus::ProxyInterfaces<org::tio::VIommu1_proxy> {
public:
    ViommuClient(sdbus::IConnection& c, const std::string& path) : ProxyInterfaces(c, guestBusName("vm1"), path) {
        registerProxy();
    }
    ~ViommuClient() { unregisterProxy(); }
};

inline std::string errorName(const std::function<void()>& call) {
    try {
        call();
    } catch (const sdbus::Error& e) {
        return e.getName();
    }
    return "no error";
}

}  // namespace tio::test
