#include "kernel/tdisp.hpp"

#include <cstring>

#include "kernel/uapi/iommufd_tsm_proposed.hpp"

namespace tio::kernel {

using namespace tio::uapi;

std::uint32_t tdispFunctionId(const Bdf& bdf) {
    const std::uint32_t rid = (std::uint32_t{bdf.bus} << 8U) | (std::uint32_t{bdf.device} << 3U) | bdf.function;
    return rid | (std::uint32_t{bdf.domain} << 16U) | (bdf.domain != 0 ? 1U << 24U : 0U);
}

std::vector<std::uint8_t> tdispGetInterfaceState(const Bdf& bdf) {
    const tdisp_header h{.version = kTdispVersion,
                         .message_type = TDISP_GET_DEVICE_INTERFACE_STATE,
                         .__reserved = {},
                         .function_id = tdispFunctionId(bdf),
                         .__reserved_id = 0};
    std::vector<std::uint8_t> out(sizeof h);
    std::memcpy(out.data(), &h, sizeof h);
    return out;
}

Result<TdispState> parseInterfaceState(std::span<const std::uint8_t> response, const Bdf& bdf) {
    tdisp_header h{};
    if (response.size() != sizeof h + 1) {
        return fail(Code::Kernel, "the TSM's DEVICE_INTERFACE_STATE has " + std::to_string(response.size()) +
                                      " bytes, not " + std::to_string(sizeof h + 1));
    }
    std::memcpy(&h, response.data(), sizeof h);
    const std::uint8_t state = response[sizeof h];
    if (h.version != kTdispVersion || h.message_type != TDISP_DEVICE_INTERFACE_STATE ||
        h.function_id != tdispFunctionId(bdf) || state > TDISP_ERROR_STATE) {
        return fail(Code::Kernel, "the TSM answered GET_DEVICE_INTERFACE_STATE with something else");
    }
    return static_cast<TdispState>(state);
}

}  // namespace tio::kernel
