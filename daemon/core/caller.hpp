#pragma once
// Who is calling, and the proof that they were let in (style rule 20). The core's
// mutating methods take an AuthorizedCaller; only the door's authorizer, which
// identifies the peer from kernel-verified credentials and asks the guard
// (core/guard.hpp) for the decision, can make one. Tests stand in for the
// authorizer with test::TrustedCaller (tests/support/trusted_caller.hpp).
#include <sys/types.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace tio::dbus {
class Authorizer;
}
namespace tio::test {
struct TrustedCaller;
}

namespace tio::core {

// The VMM's door (the guest socket) and the admin's door (the system bus).
enum class Door : std::uint8_t { Vmm, Admin };
enum class Access : std::uint8_t { Read, Mutate };

struct Caller {
    uid_t uid = static_cast<uid_t>(-1);
    pid_t pid = 0;
    std::vector<gid_t> groups;
    Door door = Door::Vmm;
};

class AuthorizedCaller {
public:
    [[nodiscard]] const Caller& caller() const { return caller_; }

private:
    friend class dbus::Authorizer;
    friend struct test::TrustedCaller;
    explicit AuthorizedCaller(Caller c) : caller_(std::move(c)) {}
    Caller caller_;
};

}  // namespace tio::core
