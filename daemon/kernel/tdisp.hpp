#pragma once
// TDISP messages (PCIe TDISP; iommufd_tsm_proposed.hpp) as the daemon itself sends
// them through the TSM: the 16-byte header with the real version and codes, the
// interface named by the function's requester id.
#include <cstdint>
#include <span>
#include <vector>

#include "common/bdf.hpp"
#include "common/error.hpp"
#include "kernel/iommufd.hpp"

namespace tio::kernel {

// INTERFACE_ID.FUNCTION_ID of `bdf`: requester id, segment, segment-valid bit.
[[nodiscard]] std::uint32_t tdispFunctionId(const Bdf& bdf);
// GET_DEVICE_INTERFACE_STATE for the interface of `bdf`.
[[nodiscard]] std::vector<std::uint8_t> tdispGetInterfaceState(const Bdf& bdf);
// The state a DEVICE_INTERFACE_STATE response carries; Kernel when the response is
// not one, or is for another interface.
[[nodiscard]] Result<TdispState> parseInterfaceState(std::span<const std::uint8_t> response, const Bdf& bdf);

}  // namespace tio::kernel
