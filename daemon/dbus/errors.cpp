#include "dbus/errors.hpp"

#include <string>

namespace tio::dbus {

int setError(sd_bus_error* err, const Error& e) {
    const std::string name = std::string(kErrorPrefix) + std::string(toString(e.code));
    const std::string message = e.code == Code::Internal ? "internal error (details in the journal)" : e.message;
    return sd_bus_error_set(err, name.c_str(), message.c_str());
}

}  // namespace tio::dbus
