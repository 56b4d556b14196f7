#pragma once
// The TDI in the core's terms: the kernel's TDISP state mapped once, the guest's TSM
// requests as the contract names them with the one table of what each may carry and
// needs, and the evidence objects a TSM keeps (core/tdi.cpp does the work).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/lifecycle.hpp"
#include "core/object_table.hpp"
#include "kernel/ioctl_table.hpp"
#include "kernel/iommufd.hpp"

namespace tio::core {

[[nodiscard]] constexpr TdiState toTdiState(kernel::TdispState s) {
    switch (s) {
        case kernel::TdispState::ConfigUnlocked: return TdiState::Unlocked;
        case kernel::TdispState::ConfigLocked: return TdiState::Locked;
        case kernel::TdispState::Run: return TdiState::Run;
        case kernel::TdispState::Error: return TdiState::Error;
    }
    return TdiState::Error;
}

// What the TDI must be for an op (set-tdi-state's need depends on its payload).
enum class TdiNeed : std::uint8_t { Bound, LockedOrRun, Run };

// One op of the TSM request, as Device1.TsmRequest names it (the guest's) or as the
// daemon issues it (GetTdiState, never the guest's).
struct TsmOpRule {
    kernel::TsmOp op;
    std::string_view name;
    std::uint32_t payload_size;  // exactly this many bytes
    TdiNeed needs;
    bool snp_only;       // SEV-TIO's ops; the TSM refuses them for other architectures
    bool changes_state;  // an uncertain outcome quarantines the TDI
    std::uint32_t response_capacity;
};

// The one table of the guest's TSM requests. Payloads are relayed unchanged; sizes
// are those of iommufd_tsm_proposed.hpp's structs.
inline constexpr std::uint32_t kTsmSmallResponse = 64;
inline constexpr std::uint32_t kTsmReadChunk = kernel::kMaxPointerBuffer;  // the kernel's cap on one buffer
inline constexpr TsmOpRule kTsmOpRules[] = {
    {kernel::TsmOp::SetTdiState, "set-tdi-state", 1, TdiNeed::Bound, false, true, kTsmSmallResponse},
    {kernel::TsmOp::ValidateMmio, "validate-mmio", 16, TdiNeed::LockedOrRun, false, true, kTsmSmallResponse},
    {kernel::TsmOp::ObjectInfo, "object-info", 4, TdiNeed::Bound, false, false, kTsmSmallResponse},
    {kernel::TsmOp::ObjectRead, "object-read", 16, TdiNeed::Bound, false, false, kTsmReadChunk},
    {kernel::TsmOp::ObjectRegenerate, "object-regenerate", 4, TdiNeed::Bound, false, true, kTsmSmallResponse},
    {kernel::TsmOp::SevEnableDma, "enable-dma", 0, TdiNeed::Run, true, true, kTsmSmallResponse},
    {kernel::TsmOp::SevDisableDma, "disable-dma", 0, TdiNeed::Run, true, true, kTsmSmallResponse},
};

// The daemon's own request: the TDISP interface state, a 16-byte TDISP message.
inline constexpr TsmOpRule kGetTdiStateRule{
    kernel::TsmOp::GetTdiState, "get-tdi-state", 16, TdiNeed::Bound, false, false, kTsmSmallResponse};

// The guest's op called `name` (never the daemon's own), or null.
[[nodiscard]] const TsmOpRule* findTsmOp(std::string_view name);
[[nodiscard]] constexpr const TsmOpRule& tsmRule(kernel::TsmOp op) {
    for (const auto& rule : kTsmOpRules)
        if (rule.op == op) return rule;
    return kGetTdiStateRule;
}

// The TSM's answer to a relayed request.
struct TsmReply {
    std::vector<std::uint8_t> response;
    std::uint64_t tsm_code = 0;
};

// The evidence objects a TSM keeps per TDI (tsm_object).
enum class EvidenceKind : std::uint32_t { Certificates = 1, Measurements = 2, InterfaceReport = 3 };
[[nodiscard]] std::optional<EvidenceKind> parseEvidenceKind(std::string_view name);
// No object the daemon hands out is larger (the TSM says how large; it is not trusted).
inline constexpr std::uint64_t kMaxEvidenceBytes = 16ULL << 20U;

// One whole object, all of it from `generation`.
struct Evidence {
    std::vector<std::uint8_t> blob;
    std::uint64_t generation = 0;
};

// Something the VMM must hear about that it did not ask for (Guest1.Fault).
struct DeviceFault {
    ObjectId device = 0;  // 0: the guest itself
    std::string kind;     // "quarantined", "tdi-changed"
    std::string detail;
};

}  // namespace tio::core
