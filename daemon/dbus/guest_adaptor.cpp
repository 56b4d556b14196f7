// org.tio.Guest1 on /org/tio/Guest1.
#include <spdlog/spdlog.h>

#include "dbus/adaptors.hpp"
#include "persist/snapshot_codec.hpp"

namespace tio::dbus {
namespace {

// Deprecated in version 2: the core answers NotSupported, saying where the VM and
// its guest_memfds are made now. The arguments are not looked at.
int createVm(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    return runMethod(m, userdata, err, Access::Mutate, "CreateVm",
                     [&](GuestService& svc, const AuthorizedCaller& who, sd_bus_message*) -> Result<> {
                         auto fd = svc.guest().createVm(who);
                         return fd ? Result<>{} : std::unexpected(fd.error());
                     });
}

int createGuestMemory(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    return runMethod(m, userdata, err, Access::Mutate, "CreateGuestMemory",
                     [&](GuestService& svc, const AuthorizedCaller& who, sd_bus_message*) -> Result<> {
                         auto fd = svc.guest().createGuestMemory(who);
                         return fd ? Result<>{} : std::unexpected(fd.error());
                     });
}

int attachVm(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    return runMethod(m, userdata, err, Access::Mutate, "AttachVm",
                     [&](GuestService& svc, const AuthorizedCaller& who, sd_bus_message*) -> Result<> {
                         auto fd = readFd(m);
                         if (!fd) return std::unexpected(fd.error());
                         auto opts = readOptions(m, static_cast<unsigned>(OptionKey::Type));
                         if (!opts) return std::unexpected(opts.error());
                         const auto vm_type = core::parseVmType(opts->type.value_or("default"));
                         if (!vm_type) {
                             return fail(Code::InvalidArgument,
                                         "unknown VM type in options (default, sw-protected, snp, tdx)");
                         }
                         auto r = svc.guest().attachVm(who, std::move(*fd), *vm_type);
                         if (r) {
                             svc.audit().record("vm-attached", "AttachVm", &who.caller(), {},
                                                "type " + std::string(core::toString(*vm_type)));
                         }
                         return r;
                     });
}

int addMemory(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    return runMethod(m, userdata, err, Access::Mutate, "AddMemory",
                     [&](GuestService& svc, const AuthorizedCaller& who, sd_bus_message* reply) -> Result<> {
                         std::uint64_t gpa = 0, size = 0, offset = 0;
                         if (sd_bus_message_read(m, "tt", &gpa, &size) < 0) return std::unexpected(malformed());
                         auto fd = readFd(m);
                         if (!fd) return std::unexpected(fd.error());
                         const char* initial = nullptr;
                         if (sd_bus_message_read(m, "ts", &offset, &initial) < 0) return std::unexpected(malformed());
                         auto opts = readOptions(m, OptionKey::SharedFd | OptionKey::SharedOffset);
                         if (!opts) return std::unexpected(opts.error());
                         const auto state = core::parseMemoryState(initial);
                         if (!state) return fail(Code::InvalidArgument, "initial is 'private' or 'shared'");
                         std::optional<core::SharedBacking> shared;
                         if (opts->shared_fd) {
                             shared = core::SharedBacking{.fd = std::move(*opts->shared_fd),
                                                          .offset = opts->shared_offset.value_or(0)};
                         } else if (opts->shared_offset) {
                             return fail(Code::InvalidArgument, "shared-offset without shared-fd");
                         }
                         auto id =
                             svc.guest().addMemory(who, gpa, size, std::move(*fd), offset, *state, std::move(shared));
                         if (!id) return std::unexpected(id.error());
                         const std::string path = memoryPath(*id);
                         if (sd_bus_message_append(reply, "o", path.c_str()) < 0) return std::unexpected(malformed());
                         return {};
                     });
}

Result<core::MemoryState> conversionTarget(const char* to) {
    const auto state = core::parseMemoryState(to);
    if (!state) return fail(Code::InvalidArgument, "to is 'private' or 'shared'");
    return *state;
}

int convertMemory(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    return runMethod(m, userdata, err, Access::Mutate, "ConvertMemory",
                     [&](GuestService& svc, const AuthorizedCaller& who, sd_bus_message*) -> Result<> {
                         std::uint64_t gpa = 0, size = 0;
                         const char* to = nullptr;
                         if (sd_bus_message_read(m, "tts", &gpa, &size, &to) < 0) return std::unexpected(malformed());
                         auto state = conversionTarget(to);
                         if (!state) return std::unexpected(state.error());
                         const core::MemoryConversion c{gpa, size, *state};
                         return svc.guest().convertMemory(who, {&c, 1});
                     });
}

int convertMemoryRanges(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    return runMethod(m, userdata, err, Access::Mutate, "ConvertMemoryRanges",
                     [&](GuestService& svc, const AuthorizedCaller& who, sd_bus_message*) -> Result<> {
                         std::vector<core::MemoryConversion> ranges;
                         if (sd_bus_message_enter_container(m, 'a', "(tts)") < 0) return std::unexpected(malformed());
                         for (;;) {
                             std::uint64_t gpa = 0, size = 0;
                             const char* to = nullptr;
                             const int r = sd_bus_message_read(m, "(tts)", &gpa, &size, &to);
                             if (r < 0) return std::unexpected(malformed());
                             if (r == 0) break;
                             auto state = conversionTarget(to);
                             if (!state) return std::unexpected(state.error());
                             ranges.push_back({gpa, size, *state});
                             // A bound on what a client can make the decoder hold; one past the
                             // core's limit is enough for the core to refuse the call.
                             if (ranges.size() > core::kMaxConversionsPerCall) break;
                         }
                         if (ranges.size() <= core::kMaxConversionsPerCall && sd_bus_message_exit_container(m) < 0) {
                             return std::unexpected(malformed());
                         }
                         return svc.guest().convertMemory(who, ranges);
                     });
}

int punchHole(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    return runMethod(m, userdata, err, Access::Mutate, "PunchHole",
                     [&](GuestService& svc, const AuthorizedCaller& who, sd_bus_message*) -> Result<> {
                         std::uint64_t gpa = 0, size = 0;
                         if (sd_bus_message_read(m, "tt", &gpa, &size) < 0) return std::unexpected(malformed());
                         auto revoked = svc.guest().punchHole(who, gpa, size);
                         if (!revoked) return std::unexpected(revoked.error());
                         for (const auto& r : *revoked) {
                             svc.audit().record("memory-revoked", "PunchHole", &who.caller(), {},
                                                fmt::format("gpa {:#x} size {:#x}", r.gpa, r.size));
                             svc.emitMemoryRevoked(r.gpa, r.size, "punch-hole");
                         }
                         return {};
                     });
}

int addDevice(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    return runMethod(m, userdata, err, Access::Mutate, "AddDevice",
                     [&](GuestService& svc, const AuthorizedCaller& who, sd_bus_message* reply) -> Result<> {
                         const char* text = nullptr;
                         if (sd_bus_message_read(m, "s", &text) < 0) return std::unexpected(malformed());
                         auto opts = readOptions(m, static_cast<unsigned>(OptionKey::VfToken));
                         if (!opts) return std::unexpected(opts.error());
                         const auto bdf = Bdf::parse(text);
                         if (!bdf) return fail(Code::InvalidArgument, "a BDF looks like 0000:3a:00.0");
                         auto id = svc.guest().addDevice(who, *bdf, opts->vf_token);
                         if (!id) {
                             // The guard's allowlist refusal is an authorization refusal: audited.
                             if (id.error().code == Code::AccessDenied) {
                                 svc.audit().record("refused", "AddDevice", &who.caller(), bdf->toString(),
                                                    id.error().message, errorName(Code::AccessDenied));
                             }
                             return std::unexpected(id.error());
                         }
                         svc.audit().record("device-assigned", "AddDevice", &who.caller(), bdf->toString());
                         const std::string path = devicePath(svc.guest().devices().at(*id));
                         if (sd_bus_message_append(reply, "o", path.c_str()) < 0) return std::unexpected(malformed());
                         return {};
                     });
}

int createViommu(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    return runMethod(m, userdata, err, Access::Mutate, "CreateVIommu",
                     [&](GuestService& svc, const AuthorizedCaller& who, sd_bus_message* reply) -> Result<> {
                         const char* device = nullptr;
                         if (sd_bus_message_read(m, "o", &device) < 0) return std::unexpected(malformed());
                         auto opts = readOptions(m);
                         if (!opts) return std::unexpected(opts.error());
                         const auto dev = deviceFromPath(svc.guest(), device);
                         if (!dev) return fail(Code::NotFound, "no such device in this guest");
                         auto id = svc.guest().createViommu(who, *dev);
                         if (!id) return std::unexpected(id.error());
                         const std::string path = viommuPath(*id);
                         if (sd_bus_message_append(reply, "o", path.c_str()) < 0) return std::unexpected(malformed());
                         return {};
                     });
}

int teardown(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    return runMethod(m, userdata, err, Access::Mutate, "Teardown",
                     [&](GuestService& svc, const AuthorizedCaller& who, sd_bus_message*) -> Result<> {
                         svc.audit().record("teardown", "Teardown", &who.caller());
                         for (const auto& e : svc.guest().teardown()) {
                             spdlog::warn("teardown step failed: {}, ignoring", e.message);
                         }
                         return {};
                     });
}

int dumpState(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    return runMethod(m, userdata, err, Access::Read, "DumpState",
                     [&](GuestService& svc, const AuthorizedCaller&, sd_bus_message* reply) -> Result<> {
                         std::string bytes;
                         if (!persist::encode(svc.guest(), svc.backend()).SerializeToString(&bytes)) {
                             return fail(Code::Internal, "snapshot did not serialize");
                         }
                         if (sd_bus_message_append_array(reply, 'y', bytes.data(), bytes.size()) < 0) {
                             return fail(Code::LimitExceeded, "snapshot too large for a message");
                         }
                         return {};
                     });
}

constexpr std::uint64_t kProp = SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE;
constexpr std::uint64_t kCall = SD_BUS_VTABLE_UNPRIVILEGED;  // the daemon authorizes itself

const sd_bus_vtable kVtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD_WITH_NAMES("CreateVm", "sa{sv}", SD_BUS_PARAM(type) SD_BUS_PARAM(options), "h", SD_BUS_PARAM(vm),
                             createVm, kCall | SD_BUS_VTABLE_DEPRECATED),
    SD_BUS_METHOD_WITH_NAMES("AttachVm", "ha{sv}", SD_BUS_PARAM(vm) SD_BUS_PARAM(options), "", , attachVm, kCall),
    SD_BUS_METHOD_WITH_NAMES("CreateGuestMemory", "ta{sv}", SD_BUS_PARAM(size) SD_BUS_PARAM(options), "h",
                             SD_BUS_PARAM(gmem), createGuestMemory, kCall | SD_BUS_VTABLE_DEPRECATED),
    SD_BUS_METHOD_WITH_NAMES("AddMemory", "tthtsa{sv}",
                             SD_BUS_PARAM(gpa) SD_BUS_PARAM(size) SD_BUS_PARAM(gmem) SD_BUS_PARAM(offset)
                                 SD_BUS_PARAM(initial) SD_BUS_PARAM(options),
                             "o", SD_BUS_PARAM(region), addMemory, kCall),
    SD_BUS_METHOD_WITH_NAMES("ConvertMemory", "tts", SD_BUS_PARAM(gpa) SD_BUS_PARAM(size) SD_BUS_PARAM(to), "", ,
                             convertMemory, kCall),
    SD_BUS_METHOD_WITH_NAMES("ConvertMemoryRanges", "a(tts)", SD_BUS_PARAM(ranges), "", , convertMemoryRanges, kCall),
    SD_BUS_METHOD_WITH_NAMES("PunchHole", "tt", SD_BUS_PARAM(gpa) SD_BUS_PARAM(size), "", , punchHole, kCall),
    SD_BUS_METHOD_WITH_NAMES("AddDevice", "sa{sv}", SD_BUS_PARAM(bdf) SD_BUS_PARAM(options), "o", SD_BUS_PARAM(device),
                             addDevice, kCall),
    SD_BUS_METHOD_WITH_NAMES("CreateVIommu", "oa{sv}", SD_BUS_PARAM(device) SD_BUS_PARAM(options), "o",
                             SD_BUS_PARAM(viommu), createViommu, kCall),
    SD_BUS_METHOD("Teardown", "", "", teardown, kCall),
    SD_BUS_METHOD_WITH_NAMES("DumpState", "", , "ay", SD_BUS_PARAM(snapshot), dumpState, kCall),
    SD_BUS_SIGNAL_WITH_NAMES("MemoryRevoked", "tts", SD_BUS_PARAM(gpa) SD_BUS_PARAM(size) SD_BUS_PARAM(reason), 0),
    SD_BUS_SIGNAL_WITH_NAMES("Fault", "oss", SD_BUS_PARAM(object) SD_BUS_PARAM(kind) SD_BUS_PARAM(detail), 0),
    SD_BUS_PROPERTY("Name", "s", getProperty, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("Platform", "s", getProperty, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("Backend", "s", getProperty, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("MemoryModel", "s", getProperty, 0, kProp),
    SD_BUS_PROPERTY("Kernel", "a{sb}", getProperty, 0, kProp),
    SD_BUS_PROPERTY("VmType", "s", getProperty, 0, kProp),
    SD_BUS_PROPERTY("State", "s", getProperty, 0, kProp),
    SD_BUS_PROPERTY("Devices", "ao", getProperty, 0, kProp),
    SD_BUS_PROPERTY("VIommus", "ao", getProperty, 0, kProp),
    SD_BUS_PROPERTY("MemoryRegions", "ao", getProperty, 0, kProp),
    SD_BUS_PROPERTY("PrivateBytes", "t", getProperty, 0, kProp),
    SD_BUS_PROPERTY("SharedBytes", "t", getProperty, 0, kProp),
    SD_BUS_PROPERTY("Conversions", "t", getProperty, 0, kProp),
    SD_BUS_PROPERTY("Revocations", "t", getProperty, 0, kProp),
    SD_BUS_PROPERTY("Clients", "u", getProperty, 0, kProp),
    SD_BUS_VTABLE_END,
};

}  // namespace

const sd_bus_vtable* guestVtable() { return kVtable; }

}  // namespace tio::dbus
