#include "common/error.hpp"

namespace tio {

std::string_view toString(Code code) noexcept {
    switch (code) {
        case Code::InvalidArgument: return "InvalidArgument";
        case Code::InvalidState: return "InvalidState";
        case Code::NotFound: return "NotFound";
        case Code::Busy: return "Busy";
        case Code::AccessDenied: return "AccessDenied";
        case Code::NotSupported: return "NotSupported";
        case Code::LimitExceeded: return "LimitExceeded";
        case Code::Kernel: return "Kernel";
        case Code::Revoked: return "Revoked";
        case Code::ShuttingDown: return "ShuttingDown";
        case Code::Internal: return "Internal";
    }
    return "Internal";
}

}  // namespace tio
