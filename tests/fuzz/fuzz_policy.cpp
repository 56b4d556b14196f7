// The policy file (policy/*.json), as core::Policy::parse reads it.
#include <cstdint>
#include <string>

#include "core/policy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto policy = tio::core::Policy::parse(std::string(reinterpret_cast<const char*>(data), size));
    (void)policy;
    return 0;
}
