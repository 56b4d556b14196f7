#include "dbus/publisher.hpp"

#include <utility>

namespace tio::dbus {

void Publisher::publish(Views next, const std::vector<Connection>& connections) {
    const Views previous = std::exchange(published_, std::move(next));
    const Views& now = published_;
    for (const auto& c : connections) {
        sd_bus* bus = c.bus;
        // A peer still authenticating cannot have subscribed to anything, and writing
        // a signal before the handshake ends would corrupt the stream.
        if (sd_bus_is_ready(bus) <= 0) continue;
        for (const auto& [path, old] : previous) {
            if (!now.contains(path))
                (void)sd_bus_emit_interfaces_removed(bus, path.c_str(), old.iface.c_str(), nullptr);
        }
        for (const auto& [path, view] : now) {
            auto it = previous.find(path);
            if (it == previous.end()) {
                (void)sd_bus_emit_interfaces_added(bus, path.c_str(), view.iface.c_str(), nullptr);
                continue;
            }
            std::vector<std::string> changed;
            for (const auto& [name, value] : view.properties) {
                auto p = it->second.properties.find(name);
                if (p == it->second.properties.end() || !(p->second == value)) changed.push_back(name);
            }
            if (changed.empty()) continue;
            std::vector<char*> names;
            names.reserve(changed.size() + 1);
            for (auto& n : changed) names.push_back(n.data());
            names.push_back(nullptr);
            (void)sd_bus_emit_properties_changed_strv(bus, path.c_str(), view.iface.c_str(), names.data());
        }
    }
}

const ObjectView* Publisher::view(const std::string& path) const {
    auto it = published_.find(path);
    return it == published_.end() ? nullptr : &it->second;
}

std::vector<std::string> Publisher::childPaths() const {
    std::vector<std::string> out;
    for (const auto& [path, v] : published_)
        if (path != kRootPath) out.push_back(path);
    return out;
}

}  // namespace tio::dbus
