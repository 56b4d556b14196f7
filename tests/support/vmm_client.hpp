#pragma once
// A VMM over D-Bus, as a real one is: its own connection to the (simulated) kernel,
// where it creates the VM, guest_memfds, memslots and the KVM-VFIO device in this
// process, and the daemon's API for everything else. The daemon runs in another
// process, so any VM ioctl it made would answer EIO: these tests prove it makes none.
#include <sdbus-c++/sdbus-c++.h>

#include <memory>
#include <string>

#include "support/guest_client.hpp"
#include "support/sim_process.hpp"
#include "support/test_vmm.hpp"

namespace tio::test {

class VmmClient {
public:
    explicit VmmClient(const SimProcess& sim) : sys_(sim.connect()), kvm_(*sys_) {}

    // Creates the VM here (of `type`, or the default type for a name the daemon
    // should refuse) and hands the daemon a duplicate, options["type"] = `type`.
    void attachVm(GuestClient& g, const std::string& type = "default") {
        g.AttachVm(vmFd(type), {{"type", sdbus::Variant(type)}});
    }
    [[nodiscard]] sdbus::UnixFd vmFd(const std::string& type = "default") {
        auto fd = must(kvm_.vmFd(core::parseVmType(type).value_or(kernel::VmType::Default)));
        return sdbus::UnixFd(fd.release(), sdbus::adopt_fd);
    }
    // A guest_memfd of `size` bound at `gpa` (the VMM's memslot), registered with
    // the daemon; returns the region's path.
    sdbus::ObjectPath addMemory(GuestClient& g, std::uint64_t gpa, std::uint64_t size,
                                const std::string& initial = "shared") {
        auto gmem = must(kvm_.guestMemory(gpa, size));
        return g.AddMemory(gpa, size, sdbus::UnixFd(gmem.get()), 0, initial, {});
    }
    // AddDevice, then what a VMM does before Attach (GetVfioFd, KVM_DEV_VFIO_FILE_ADD),
    // then Attach; returns the device's path.
    sdbus::ObjectPath addDevice(sdbus::IConnection& c, GuestClient& g, const std::string& bdf) {
        auto path = g.AddDevice(bdf, {});
        DeviceClient dev(c, path);
        auto vfio = dev.GetVfioFd();
        must(kvm_.addVfioFile(vfio.get()));
        vfio_files_.push_back(std::move(vfio));
        dev.Attach();
        return path;
    }
    [[nodiscard]] TestVmm& kvm() { return kvm_; }
    // The VMM's own fds closed, as at its exit.
    void exit() {
        vfio_files_.clear();
        kvm_.reset();
    }

private:
    template <typename T>
    static T must(Result<T> r) {
        if (!r) throw std::runtime_error("the test VMM failed: " + r.error().message);
        return std::move(*r);
    }
    static void must(Result<> r) {
        if (!r) throw std::runtime_error("the test VMM failed: " + r.error().message);
    }

    std::unique_ptr<kernel::SimSyscalls> sys_;
    TestVmm kvm_;
    std::vector<sdbus::UnixFd> vfio_files_;
};

}  // namespace tio::test
