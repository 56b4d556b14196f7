// Guest: the TDI through the TSM series (RFC v7; kernel-as-it-is.md 6). A vDEVICE on
// a TSM vIOMMU holds the TSM's device context (devices.cpp creates it); Bind LOCKs,
// the guest's requests are relayed, Unbind STOPs, all through IOMMU_VDEVICE_TSM_REQ.
// The TSM is trusted with the outcome, not with the answer: whatever it says is
// checked, and a state change whose outcome cannot be known quarantines the TDI
// (nothing is retried blindly; a second LOCK is not harmless).
#include "core/tdi.hpp"

#include <cerrno>
#include <cstring>

#include "core/guest.hpp"
#include "kernel/kernel_error.hpp"
#include "kernel/tdisp.hpp"
#include "kernel/tsm.hpp"
#include "kernel/uapi/iommufd_tsm_proposed.hpp"

namespace tio::core {

const TsmOpRule* findTsmOp(std::string_view name) {
    for (const auto& rule : kTsmOpRules)
        if (rule.name == name) return &rule;
    return nullptr;
}

std::optional<EvidenceKind> parseEvidenceKind(std::string_view name) {
    if (name == "certificates") return EvidenceKind::Certificates;
    if (name == "measurements") return EvidenceKind::Measurements;
    if (name == "interface-report") return EvidenceKind::InterfaceReport;
    return std::nullopt;
}

bool Guest::hasTsmContext(const Device& d) const {
    return d.tdisp_capable && d.vdevice && kernel::isTsmViommuType(viommus_.at(d.vdevice->viommu).type) &&
           vm_->features.tsm_request;
}

Result<> Guest::connectDsm(Device& d, Rollback& undo) {
    kernel::Tsm tsm(sys_);
    auto connected = tsm.connectedTo(d.dsm);
    if (!connected) return std::unexpected(connected.error());
    const bool was_known = d.tsm_connected;
    const Bdf was_dsm = d.dsm;
    if (connected->empty()) {
        if (auto r = tsm.connect(d.dsm); !r) return r;
        // Undoing is safe: the DSM was not connected, so no TDI under it is bound.
        undo.add([this, dsm = d.dsm] {
            kernel::Tsm t(sys_);
            if (auto name = t.connectedTo(dsm); name && !name->empty()) (void)t.disconnect(dsm, *name);
        });
    }
    undo.add([&d, was_known, was_dsm] {
        d.tsm_connected = was_known;
        d.dsm = was_dsm;
    });
    // Connected, the kernel names the DSM itself (tsm/dsm): that is what holds from now.
    auto named = tsm.dsmOf(d.bdf);
    if (!named) return std::unexpected(named.error());
    d.dsm = *named;
    d.tsm_connected = true;  // the DSM stays connected after Unbind (disconnect is an admin act)
    return {};
}

void Guest::quarantine(Device& d, const std::string& what) {
    if (d.tdi == TdiState::Quarantined) return;
    d.tdi = TdiState::Quarantined;  // the table allows it from every other state
    faults_.push_back({d.id, "quarantined", d.bdf.toString() + ": " + what});
    changed();
}

Result<kernel::TsmAnswer> Guest::relay(Device& d, const TsmOpRule& rule, std::span<const std::uint8_t> payload) {
    const std::string op(rule.name);
    auto sent = vm_->iommufd.tsmRequest(d.vdevice->kernel_id, rule.op, kernel::tvmArchFor(config_.platform), payload,
                                        rule.response_capacity);
    if (!sent) return std::unexpected(sent.error());
    const kernel::TsmAnswer& a = *sent;
    // The outcome is uncertain when the TSM may have committed what the answer does
    // not say: a failed copy-back, a residue beyond the buffer, success with an error code.
    std::string uncertain;
    if (a.error == EFAULT) uncertain = "the answer was lost after the TSM may have acted (EFAULT)";
    else if (a.error == ETIMEDOUT) uncertain = "the kernel did not answer within its bound (ETIMEDOUT)";
    else if (!a.residuePlausible(rule.response_capacity)) uncertain = "the residue exceeds the buffer offered";
    else if (a.error == 0 && a.tsm_code != 0) uncertain = "success with TSM error code " + std::to_string(a.tsm_code);
    if (!uncertain.empty()) {
        if (rule.changes_state) {
            quarantine(d, op + ": " + uncertain);
            return fail(Code::Kernel, "IOMMU_VDEVICE_TSM_REQ " + op + ": " + uncertain + "; the TDI is quarantined",
                        a.error != 0 ? a.error : EIO);
        }
        return fail(Code::Kernel, "IOMMU_VDEVICE_TSM_REQ " + op + ": " + uncertain, a.error != 0 ? a.error : EIO);
    }
    if (a.error == ENXIO) {
        return fail(Code::InvalidState,
                    "the TSM holds no context for this TDI (its DSM was disconnected): DestroyVDevice, then "
                    "CreateVDevice",
                    ENXIO);
    }
    if (a.error != 0) {
        Error e = kernel::kernelError("IOMMU_VDEVICE_TSM_REQ " + op, a.error);
        e.message += " (tsm_code " + std::to_string(a.tsm_code) + ")";
        return std::unexpected(std::move(e));
    }
    return sent;
}

Result<TdiState> Guest::readTdiState(Device& d) {
    auto a = relay(d, kGetTdiStateRule, kernel::tdispGetInterfaceState(d.bdf));
    if (!a) return std::unexpected(a.error());
    auto state = kernel::parseInterfaceState(a->response, d.bdf);
    if (!state) return std::unexpected(state.error());
    return toTdiState(*state);
}

Result<> Guest::refreshTdi(Device& d) {
    if (!d.tdisp_capable || !vm_) return {};
    if (!hasTsmContext(d)) {
        // No TDI to ask about: only whether the DSM's link is up (one sysfs read).
        auto name = kernel::Tsm(sys_).connectedTo(d.dsm);
        if (!name) return std::unexpected(name.error());
        if (name->empty() == d.tsm_connected) {
            d.tsm_connected = !name->empty();
            changed();
        }
        return {};
    }
    // A quarantined TDI keeps its quarantine until Unbind or an administrator's Reset,
    // whatever the TSM says now.
    if (d.tdi == TdiState::Quarantined) return {};
    auto now = readTdiState(d);
    // ENXIO: the TSM dropped its context (the DSM was disconnected): nothing is bound.
    const bool lost = !now && now.error().sys_errno == ENXIO;
    if (!now && !lost) return std::unexpected(now.error());
    const TdiState state = lost ? TdiState::Unlocked : *now;
    if (state == d.tdi && (!lost || !d.tsm_connected)) return {};
    // A change the daemon did not make: a host config write, a reset, a disconnect.
    if (lost) d.tsm_connected = false;
    std::string line = force(d.tdi, state, lost ? "the TSM dropped it (DSM disconnected)" : "as the TSM reports it");
    if (line.empty()) line = "unchanged; the DSM was disconnected";
    const bool broke = state == TdiState::Error;
    faults_.push_back({d.id, broke ? "tdi-error" : "tdi-changed",
                       d.bdf.toString() + ": TDI " + line + (broke ? " (host config write or reset); Unbind it" : "")});
    changed();
    return {};
}

Result<> Guest::moveTdi(Device& d, TdiState to) {
    if (auto r = transition(kTdiTransitions, d.tdi, to); !r) return r;
    changed();
    return {};
}

Result<> Guest::bind(Who, ObjectId device) {
    auto dev = deviceFor("Bind", device);
    if (!dev) return std::unexpected(dev.error());
    Device& d = **dev;
    if (!d.tdisp_capable) return fail(Code::NotSupported, d.bdf.toString() + " has no TDISP capability");
    if (!vm_->features.tsm_request) {
        return fail(Code::NotSupported, "this kernel has no TSM series (IOMMU_VDEVICE_TSM_REQ, RFC v7)");
    }
    // SEV-TIO's trusted DMA goes through IOPTEs over private memory, which only a
    // kernel that maps guest_memfd by file can make (shared memory is still served).
    if (config_.platform == Platform::Snp && vm_->gmem_map_file == false) {
        return fail(Code::NotSupported,
                    "SNP trusted DMA needs guest_memfd in IOMMU_IOAS_MAP_FILE (the RFC), which this kernel lacks");
    }
    if (!d.vdevice) return fail(Code::InvalidState, "Bind needs a vDEVICE (CreateVDevice first)");
    if (auto r = refreshTdi(d); !r) return r;
    if (!permitted(kTdiTransitions, d.tdi, TdiState::Locked)) {
        return fail(Code::InvalidState, whatFirst(d.tdi, TdiState::Locked));
    }
    const std::uint8_t lock[] = {uapi::TDISP_CONFIG_LOCKED};
    if (auto a = relay(d, tsmRule(kernel::TsmOp::SetTdiState), lock); !a) return std::unexpected(a.error());
    return moveTdi(d, TdiState::Locked);
}

Result<TsmReply> Guest::tsmRequest(Who, ObjectId device, std::string_view op, std::span<const std::uint8_t> payload) {
    auto dev = deviceFor("TsmRequest", device);
    if (!dev) return std::unexpected(dev.error());
    Device& d = **dev;
    // The request is validated before any state is looked at (style rule 19).
    const TsmOpRule* rule = findTsmOp(op);
    if (rule == nullptr) return fail(Code::InvalidArgument, "unknown TSM op '" + std::string(op) + "'");
    if (payload.size() != rule->payload_size) {
        return fail(Code::InvalidArgument, std::string(op) + " carries " + std::to_string(rule->payload_size) +
                                               " bytes, not " + std::to_string(payload.size()));
    }
    std::optional<TdiState> target;
    if (rule->op == kernel::TsmOp::SetTdiState) {
        if (payload[0] == uapi::TDISP_RUN) target = TdiState::Run;
        else if (payload[0] == uapi::TDISP_CONFIG_UNLOCKED) target = TdiState::Unlocked;
        else return fail(Code::InvalidArgument, "set-tdi-state asks for 0x02 (RUN) or 0x00 (unlocked)");
    }
    if (!vm_->features.tsm_request) {
        return fail(Code::NotSupported, "this kernel has no TSM series (IOMMU_VDEVICE_TSM_REQ, RFC v7)");
    }
    if (rule->snp_only && config_.platform != Platform::Snp) {
        return fail(Code::NotSupported,
                    std::string(op) + " is SEV-TIO's; this guest is " + std::string(toString(config_.platform)));
    }
    if (!hasTsmContext(d)) {
        return fail(Code::InvalidState, "TsmRequest needs a vDEVICE bound by the TSM (CreateVDevice first)");
    }
    if (auto r = refreshTdi(d); !r) return std::unexpected(r.error());
    if (d.tdi == TdiState::Quarantined) return fail(Code::InvalidState, whatFirst(d.tdi, TdiState::Unlocked));
    if (target) {
        if (!permitted(kTdiTransitions, d.tdi, *target)) return fail(Code::InvalidState, whatFirst(d.tdi, *target));
    } else if (rule->needs == TdiNeed::LockedOrRun && d.tdi != TdiState::Locked && d.tdi != TdiState::Run) {
        return fail(Code::InvalidState, "the TDI is " + std::string(toString(d.tdi)) + "; " + std::string(op) +
                                            " needs it locked or running (Bind first)");
    } else if (rule->needs == TdiNeed::Run && d.tdi != TdiState::Run) {
        return fail(Code::InvalidState,
                    "the TDI is " + std::string(toString(d.tdi)) + "; " + std::string(op) + " needs it running");
    }
    auto a = relay(d, *rule, payload);
    if (!a) return std::unexpected(a.error());
    if (target) {
        if (auto r = moveTdi(d, *target); !r) return std::unexpected(r.error());
    }
    return TsmReply{.response = std::move(a->response), .tsm_code = a->tsm_code};
}

Result<std::vector<std::uint8_t>> Guest::guestRequest(Who who, ObjectId device, GuestRequestScope scope,
                                                      std::span<const std::uint8_t> request) {
    // Deprecated (contract version 2): state-change is set-tdi-state and answers the
    // state reached; info takes a TDISP request code: the interface report (0x84) or
    // the interface state (0x85).
    if (request.size() != 1) return fail(Code::InvalidArgument, "a GuestRequest is one byte");
    if (scope == GuestRequestScope::StateChange) {
        auto r = tsmRequest(who, device, "set-tdi-state", request);
        if (!r) return std::unexpected(r.error());
        return std::vector<std::uint8_t>{request[0]};
    }
    if (request[0] == uapi::TDISP_GET_DEVICE_INTERFACE_REPORT) {
        auto e = evidence(who, device, EvidenceKind::InterfaceReport);
        if (!e) return std::unexpected(e.error());
        return std::move(e->blob);
    }
    if (request[0] != uapi::TDISP_GET_DEVICE_INTERFACE_STATE) {
        return fail(Code::InvalidArgument, "info asks for 0x84 (interface report) or 0x85 (interface state)");
    }
    auto dev = deviceFor("GuestRequest", device);
    if (!dev) return std::unexpected(dev.error());
    if (!hasTsmContext(**dev)) {
        return fail(Code::InvalidState, "GuestRequest needs a vDEVICE bound by the TSM (CreateVDevice first)");
    }
    if (auto r = refreshTdi(**dev); !r) return std::unexpected(r.error());
    return std::vector<std::uint8_t>{static_cast<std::uint8_t>((*dev)->tdi)};
}

Result<> Guest::unbind(Who, ObjectId device) {
    auto dev = deviceFor("Unbind", device);
    if (!dev) return std::unexpected(dev.error());
    Device& d = **dev;
    if (!hasTsmContext(d)) return fail(Code::InvalidState, "the device is not bound (Bind first)");
    if (auto r = refreshTdi(d); !r) return r;
    if (!permitted(kTdiTransitions, d.tdi, TdiState::Unlocked)) {
        return fail(Code::InvalidState, whatFirst(d.tdi, TdiState::Unlocked));
    }
    if (auto r = stopTdi(d); !r) return r;
    if (d.tdi != TdiState::Quarantined) return moveTdi(d, TdiState::Unlocked);
    // Out of quarantine only on the kernel's word.
    auto now = readTdiState(d);
    if (!now) return std::unexpected(now.error());
    if (*now != TdiState::Unlocked) {
        return fail(Code::Kernel, "STOP succeeded but the TSM reports the TDI " + std::string(toString(*now)) +
                                      "; it stays quarantined");
    }
    return moveTdi(d, TdiState::Unlocked);
}

Result<> Guest::stopTdi(Device& d) {
    const std::uint8_t stop[] = {uapi::TDISP_CONFIG_UNLOCKED};
    auto a = relay(d, tsmRule(kernel::TsmOp::SetTdiState), stop);
    if (!a) return std::unexpected(a.error());
    return {};
}

Result<> Guest::reset(Who who, ObjectId device) {
    auto dev = deviceFor("Reset", device);
    if (!dev) return std::unexpected(dev.error());
    Device& d = **dev;
    if (auto r = refreshTdi(d); !r) return r;
    const bool quarantined = d.tdi == TdiState::Quarantined;
    if (quarantined && who.caller().door != Door::Admin) {
        return fail(Code::AccessDenied, "a quarantined TDI is reset only by an administrator on the admin door");
    }
    // A reset of a bound TDI destroys its TDISP state: never do it (kernel-uapi.md 2.5).
    if (!quarantined && d.tdiNeedsUnbind()) {
        return fail(Code::InvalidState, "the TDI is " + std::string(toString(d.tdi)) + " (Unbind first)");
    }
    if (auto r = d.vfio.reset(); !r) return r;
    if (!quarantined) return {};
    // The administrator's reset ends the quarantine with what the kernel says now.
    TdiState now = TdiState::Unlocked;
    if (hasTsmContext(d)) {
        auto st = readTdiState(d);
        if (!st) return std::unexpected(st.error());
        now = *st;
    }
    const std::string line = force(d.tdi, now, "re-read after an administrator's reset");
    faults_.push_back({d.id, "tdi-changed", d.bdf.toString() + ": TDI " + line});
    changed();
    return {};
}

Result<Evidence> Guest::evidence(Who, ObjectId device, EvidenceKind kind) {
    auto dev = deviceFor("GetEvidence", device);
    if (!dev) return std::unexpected(dev.error());
    Device& d = **dev;
    if (!vm_->features.tsm_request) {
        return fail(Code::NotSupported, "this kernel has no TSM series (IOMMU_VDEVICE_TSM_REQ, RFC v7)");
    }
    if (!hasTsmContext(d)) return fail(Code::InvalidState, "evidence needs a vDEVICE bound by the TSM");
    if (kind == EvidenceKind::InterfaceReport) {
        // The report describes a locked interface: there is none before LOCK or after an error.
        if (auto r = refreshTdi(d); !r) return std::unexpected(r.error());
        if (d.tdi != TdiState::Locked && d.tdi != TdiState::Run) {
            return fail(Code::InvalidState,
                        "the TDI is " + std::string(toString(d.tdi)) + "; its interface report needs it locked (Bind)");
        }
    }
    const auto object = static_cast<std::uint32_t>(kind);
    std::uint8_t which[sizeof object];
    std::memcpy(which, &object, sizeof object);
    const auto info = [&]() -> Result<uapi::tsm_object_info> {
        auto a = relay(d, tsmRule(kernel::TsmOp::ObjectInfo), which);
        if (!a) return std::unexpected(a.error());
        uapi::tsm_object_info i{};
        if (a->response.size() != sizeof i) return fail(Code::Kernel, "the TSM's object info is malformed");
        std::memcpy(&i, a->response.data(), sizeof i);
        return i;
    };
    // An object is read in chunks; it is handed out only when its generation did not
    // move between the first look and the last (LOCK, a reset or a regenerate may
    // replace it meanwhile). A few tries, then the caller hears why.
    constexpr int kTries = 3;
    for (int attempt = 0; attempt < kTries; ++attempt) {
        auto before = info();
        if (!before) return std::unexpected(before.error());
        if (before->size > kMaxEvidenceBytes) {
            return fail(Code::LimitExceeded,
                        "the TSM's object is " + std::to_string(before->size) + " bytes; at most 16 MiB is handed out");
        }
        Evidence e{.blob = {}, .generation = before->generation};
        e.blob.reserve(before->size);
        while (e.blob.size() < before->size) {
            const uapi::tsm_object_read rd{.object = object, .__reserved = 0, .offset = e.blob.size()};
            std::uint8_t req[sizeof rd];
            std::memcpy(req, &rd, sizeof rd);
            auto a = relay(d, tsmRule(kernel::TsmOp::ObjectRead), req);
            if (!a) return std::unexpected(a.error());
            if (a->response.empty() || a->response.size() > before->size - e.blob.size()) {
                return fail(Code::Kernel, "the TSM's object read does not add up to the size it gave");
            }
            e.blob.insert(e.blob.end(), a->response.begin(), a->response.end());
        }
        auto after = info();
        if (!after) return std::unexpected(after.error());
        if (after->generation == before->generation && after->size == before->size) return e;
    }
    return fail(Code::Busy, "the object kept changing while it was read; try again");
}

Result<> Guest::refreshDevice(ObjectId device) {
    auto it = devices_.find(device);
    if (it == devices_.end() || !vm_) return {};
    return refreshTdi(it->second);
}

void Guest::watchTdis() {
    if (!vm_) return;
    // A failed read is retried on the next look; the state stays as last known.
    for (auto& [id, d] : devices_) (void)refreshTdi(d);
}

std::vector<DeviceFault> Guest::takeFaults() { return std::exchange(faults_, {}); }

}  // namespace tio::core
