#include "dbus/errors.hpp"

namespace tio::dbus {

std::string errorName(Code code) { return std::string(kErrorPrefix) + std::string(toString(code)); }

int setError(sd_bus_error* err, const Error& e) {
    const std::string message = e.code == Code::Internal ? "internal error (details in the journal)" : e.message;
    return sd_bus_error_set(err, errorName(e.code).c_str(), message.c_str());
}

}  // namespace tio::dbus
