#include "kernel/kernel_error.hpp"

#include <cerrno>
#include <string>

#include "kernel/ioctl_table.hpp"

namespace tio::kernel {

Error kernelError(std::string_view operation, int err) {
    Code code = Code::Kernel;
    switch (err) {
        case ENOTTY:
        case EOPNOTSUPP: code = Code::NotSupported; break;
        case EBUSY: code = Code::Busy; break;
        case EPERM:
        case EACCES: code = Code::AccessDenied; break;
        default: break;
    }
    std::string name(errnoName(err));
    if (name.empty()) name = "errno " + std::to_string(err);
    return Error{code, std::string(operation) + " failed: " + name, err};
}

}  // namespace tio::kernel
