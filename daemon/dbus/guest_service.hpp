#pragma once
// The guest's D-Bus face, shared by both doors: the same vtables are registered on
// every peer-to-peer VMM connection and on the system bus (one adaptor layer, no
// duplicated adaptor code). Every method runs the same shape (style rule 19):
// refuse while shutting down, authorize from kernel-verified credentials, decode and
// validate, call the core, publish what changed, reply. Nothing escapes a handler but
// a named org.tio.Error.
//
// publish() is the one source of object and property signals: it rebuilds a view of
// every object from the core's model and emits InterfacesAdded/Removed and
// PropertiesChanged for the differences, so no handler can forget one.
// Single-threaded: everything runs on the sd-event loop.
#include <systemd/sd-bus.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "audit/audit_log.hpp"
#include "core/guest.hpp"
#include "core/policy.hpp"

namespace tio::dbus {

inline constexpr const char* kRootPath = "/org/tio/Guest1";
inline constexpr const char* kGuestIface = "org.tio.Guest1";
inline constexpr const char* kDeviceIface = "org.tio.Device1";
inline constexpr const char* kViommuIface = "org.tio.VIommu1";
inline constexpr const char* kMemoryIface = "org.tio.Memory1";

enum class Door : std::uint8_t { Vmm, Admin };
enum class Access : std::uint8_t { Read, Mutate };

struct Caller {
    uid_t uid = static_cast<uid_t>(-1);
    pid_t pid = 0;
    std::vector<gid_t> groups;
    Door door = Door::Vmm;
};

// Proof that the caller was authorized for a mutating call (style rule 20): only
// GuestService::authorize can make one, and every mutating core call goes through
// a handler that must hold one.
class AuthorizedCaller {
public:
    [[nodiscard]] const Caller& caller() const { return caller_; }

private:
    friend class GuestService;
    explicit AuthorizedCaller(Caller c) : caller_(std::move(c)) {}
    Caller caller_;
};

struct ObjectPathValue {
    std::string path;
    friend bool operator==(const ObjectPathValue&, const ObjectPathValue&) = default;
};
using PropertyValue = std::variant<std::string, std::uint64_t, std::uint32_t, bool, ObjectPathValue,
                                   std::vector<ObjectPathValue>>;
struct ObjectView {
    std::string iface;
    std::map<std::string, PropertyValue> properties;
};

class GuestService {
public:
    GuestService(core::Guest& guest, core::Policy policy, std::string backend,
                 audit::AuditLog audit = audit::AuditLog());
    GuestService(const GuestService&) = delete;
    GuestService& operator=(const GuestService&) = delete;

    // Registers the object tree on `bus`; 0 or a negative errno.
    [[nodiscard]] int attach(sd_bus* bus, Door door);
    // `bus` is gone. When it was the last VMM connection, the guest is torn down.
    void detached(sd_bus* bus);

    // One audit record (journal line and, with a state directory, a record in the
    // audit log) for an assignment change, a refusal or a policy event.
    void record(std::string event, std::string_view method = {}, const Caller* who = nullptr,
                std::string object = {}, std::string detail = {}, std::string error = {});

    // A new policy applies to the calls that follow. What the guest already holds and
    // the new policy no longer allows is reported (Fault, kind "policy"), never torn
    // down behind the VMM's back.
    void setPolicy(core::Policy policy);
    // Conversions-per-second budget of the guest's policy: LimitExceeded when taking
    // `ranges` more would exceed it within the current second.
    [[nodiscard]] Result<> takeConversionBudget(std::size_t ranges);
    void beginShutdown() { shutting_down_ = true; }
    [[nodiscard]] bool shuttingDown() const { return shutting_down_; }
    [[nodiscard]] std::size_t vmmClients() const;

    // --- used by the adaptors ---
    [[nodiscard]] core::Guest& guest() { return guest_; }
    [[nodiscard]] const core::Policy& policy() const { return policy_; }
    [[nodiscard]] const std::string& backend() const { return backend_; }
    // Identity from the kernel (SO_PEERCRED on the guest socket) or the bus (never
    // /proc augmentation); the decision from the policy. Each refusal is audited.
    [[nodiscard]] Result<AuthorizedCaller> authorize(sd_bus_message* m, Access access, std::string_view method);
    void publish();
    // Called at the end of every publish(), before the reply of the call that caused
    // it goes out: where the daemon makes its state durable (persist/).
    void setOnPublished(std::function<void()> fn) { on_published_ = std::move(fn); }
    void emitFault(const std::string& object_path, const std::string& kind, const std::string& detail);
    void emitMemoryRevoked(std::uint64_t gpa, std::uint64_t size, const std::string& reason);
    // One look at the bound TDIs: a TDI that went to error is published and reported
    // with a Fault signal (the VMM did not ask for it).
    void watchTdis();
    // The view of the object at `path` (root or child), if it exists.
    [[nodiscard]] const ObjectView* view(const std::string& path);
    [[nodiscard]] std::vector<std::string> childPaths();

    [[nodiscard]] static std::string devicePath(const core::Device& d);
    [[nodiscard]] static std::string viommuPath(core::ObjectId id);
    [[nodiscard]] static std::string memoryPath(core::ObjectId id);
    // The object id named by the last element of a child path, if well-formed.
    [[nodiscard]] std::optional<core::ObjectId> deviceFromPath(std::string_view path) const;
    [[nodiscard]] static std::optional<core::ObjectId> idFromPath(std::string_view path, std::string_view prefix);

private:
    struct ConversionWindow {
        std::uint64_t second = 0;  // CLOCK_MONOTONIC seconds
        std::uint64_t used = 0;
    };
    ConversionWindow conversion_window_;

    struct Connection {
        sd_bus* bus = nullptr;
        Door door = Door::Vmm;
    };
    [[nodiscard]] std::map<std::string, ObjectView> buildViews() const;
    // Emits a Guest1 signal on every connection that can carry it.
    template <typename... Args>
    void broadcast(const char* member, const char* signature, Args... args);
    [[nodiscard]] Result<Caller> identify(sd_bus_message* m, Door door) const;

    core::Guest& guest_;
    core::Policy policy_;
    std::string backend_;
    audit::AuditLog audit_;
    std::function<void()> on_published_;
    bool shutting_down_ = false;
    std::vector<Connection> connections_;
    std::map<std::string, ObjectView> published_;  // what the clients have been told
};

}  // namespace tio::dbus
