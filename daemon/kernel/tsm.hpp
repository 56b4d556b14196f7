#pragma once
// The PCI TSM as merged (6.19, drivers/pci/tsm.c; kernel-as-it-is.md 6): each function
// has a device security manager (DSM): function 0 of its PF for a VF (sysfs physfn),
// function 0 of its own slot otherwise; after connect, tsm/dsm names it. Connecting
// the DSM to a link TSM sets up SPDM and IDE. A VF's tsm/ group (and a non-zero
// function's) appears only once its DSM is connected; a DSM's appears when a link TSM
// registers, also for an IDE-only PF0, whose group has no `bound` (it is not TDISP).
// A switch upstream port is the DSM of the function 0 below it when a link TSM sees it
// as one (found through the device's place in /sys/devices).
// TDI bind and the guest's requests go through the proposed iommufd vDEVICE ioctls
// (Iommufd::tsmRequest).
#include <optional>
#include <string>

#include "common/bdf.hpp"
#include "common/error.hpp"
#include "kernel/syscalls.hpp"

namespace tio::kernel {

class Tsm {
public:
    explicit Tsm(Syscalls& sys) : sys_(&sys) {}

    // The DSM of `bdf`: tsm/dsm when the group shows one, else function 0 of its PF
    // (physfn) or of its own slot, or the switch upstream port above that function 0.
    [[nodiscard]] Result<Bdf> dsmOf(const Bdf& bdf);
    // Whether `dsm` can set up TDISP: its tsm/ group is there and has `bound`.
    [[nodiscard]] Result<bool> tdispCapable(const Bdf& dsm);
    // Name of the TSM `dsm` is connected to, "" when not connected.
    [[nodiscard]] Result<std::string> connectedTo(const Bdf& dsm);
    // Connects `dsm` to the first link TSM of /sys/class/tsm (a devsec TSM answers
    // ENXIO and the next is tried). Already connected (EBUSY) counts as done.
    [[nodiscard]] Result<> connect(const Bdf& dsm);
    // Disconnects `dsm` from `tsm` (the kernel unbinds every TDI under it first).
    [[nodiscard]] Result<> disconnect(const Bdf& dsm, const std::string& tsm);
    // The function's `bound` attribute: the TSM's name while it holds a context for the TDI.
    [[nodiscard]] Result<std::string> bound(const Bdf& bdf);

private:
    // The switch upstream port above `zero` (a function 0) when it is a DSM.
    [[nodiscard]] Result<std::optional<Bdf>> switchUpstreamPort(const Bdf& zero);

    Syscalls* sys_;
};

}  // namespace tio::kernel
