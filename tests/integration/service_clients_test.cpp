// Other clients than sdbus-c++: dbus-python (which hits the sd-bus 252 p2p dispatch
// bug when the fix is missing), busctl and gdbus; an unauthorised uid on each door;
// and the demo VMM binary.
#include <unistd.h>

#include <gtest/gtest.h>
#include <sdbus-c++/sdbus-c++.h>

#include <fstream>
#include <map>

#include "support/daemon_rig.hpp"
#include "support/eventually.hpp"
#include "support/vmm_client.hpp"

namespace tio::test {
namespace {

bool haveRootAndSetpriv() { return ::geteuid() == 0 && runCommand("command -v setpriv").status == 0; }

class ClientsTest : public ::testing::Test {
protected:
    SimProcess sim{"snp"};
    PrivateSystemBus bus;
    DaemonProcess daemon{sim, "vm1", bus.address()};

    std::string python(const std::string& code, const std::string& prefix = "") {
        const std::string cmd = prefix + "/usr/bin/python3 -c '" + code + "'";
        return runCommand(cmd).output;
    }
    std::string pyConnect() const {
        return "import dbus; c = dbus.connection.Connection(\"" + daemon.address() +
               "\"); "
               "g = lambda m, sig=\"\", args=[]: c.call_blocking(None, \"/org/tio/Guest1\", \"org.tio.Guest1\", m, "
               "sig, args)\n"
               // libdbus learns whether fds may pass when authentication ends, which on a
               // p2p connection is at the first message: one without fds goes first.
               "c.call_blocking(None, \"/org/tio/Guest1\", \"org.freedesktop.DBus.Peer\", \"Ping\", \"\", [])\n";
    }
    // The Python VMM's own KVM: the simulator's, through the module the project ships.
    std::string pyKvm() const {
        return "import sys; sys.path.insert(0, \"" TIO_SOURCE_DIR
               "/daemon/simkernel/python\")\n"
               "import tio_simkernel\n"
               "sim = tio_simkernel.SimKernel(\"" +
               sim.kernelSocket() + "\")\nvm = sim.kvm().create_vm()\n";
    }
};

TEST_F(ClientsTest, DbusPythonDrivesTheGuestAndSeesErrorNames) {
    const std::string code = pyKvm() + pyConnect() +
                             "g(\"AttachVm\", \"ha{sv}\", [dbus.types.UnixFd(vm.fd), {\"type\": \"default\"}])\n"
                             "gmem = vm.create_guest_memfd(8 << 20)\n"
                             "vm.set_memslot(0, 1 << 32, 8 << 20, gmem)\n"
                             "print(\"mem\", g(\"AddMemory\", \"tthtsa{sv}\", [1 << 32, 8 << 20, "
                             "dbus.types.UnixFd(gmem), 0, \"shared\", {}]))\n"
                             "dev = g(\"AddDevice\", \"sa{sv}\", [\"0000:3a:00.0\", {}])\n"
                             "print(\"dev\", dev)\n"
                             "vfio = c.call_blocking(None, dev, \"org.tio.Device1\", \"GetVfioFd\", \"\", [])\n"
                             "vm.create_vfio_device().add_file(vfio.take())\n"
                             "c.call_blocking(None, dev, \"org.tio.Device1\", \"Attach\", \"\", [])\n"
                             "print(\"attached\", c.call_blocking(None, dev, \"org.freedesktop.DBus.Properties\", "
                             "\"Get\", \"ss\", [\"org.tio.Device1\", \"Attached\"]))\n"
                             "try:\n"
                             "    g(\"AddDevice\", \"sa{sv}\", [\"0000:3a:00.zz\", {}])\n"
                             "except dbus.exceptions.DBusException as e:\n"
                             "    print(\"error\", e.get_dbus_name())\n"
                             "p = c.call_blocking(None, \"/org/tio/Guest1\", \"org.freedesktop.DBus.Properties\", "
                             "\"Get\", \"ss\", [\"org.tio.Guest1\", \"State\"])\n"
                             "print(\"state\", p)\n";
    const auto out = python(code);
    EXPECT_NE(out.find("mem /org/tio/Guest1/memory/1"), std::string::npos) << out;
    EXPECT_NE(out.find("dev /org/tio/Guest1/device/0000_3a_00_0"), std::string::npos) << out;
    EXPECT_NE(out.find("attached 1"), std::string::npos) << out;
    EXPECT_NE(out.find("error org.tio.Error.InvalidArgument"), std::string::npos) << out;
    EXPECT_NE(out.find("state active"), std::string::npos) << out;
    EXPECT_TRUE(eventually([&] { return sim.counter("objects") == 0 && sim.counter("open_files") == 0; }))
        << "python exited: the daemon tore down, and its own files closed";
}

// A stranger (neither an owner nor uid 0) who can reach the guest socket gets
// nothing: the daemon reads SO_PEERCRED at accept and closes the connection before
// any D-Bus work. No method, no property, no object list, no signal; it never counts
// as a VMM client (it cannot keep the guest alive) and leaves no fd behind.
TEST_F(ClientsTest, AStrangerIsTurnedAwayAtTheGuestSocket) {
    if (!haveRootAndSetpriv()) GTEST_SKIP() << "needs root and setpriv to run a client as nobody";
    // Root (an owner) holds a VMM connection with a device attached.
    auto conn = sdbus::createSessionBusConnectionWithAddress(daemon.address());
    GuestClient guest(*conn);
    VmmClient vmm(sim);
    vmm.attachVm(guest);
    const sdbus::ObjectPath dev = vmm.addDevice(*conn, guest, "0000:3a:00.0");
    ASSERT_EQ(guest.Clients(), 1U);
    const auto objects = sim.counter("objects");
    const auto syscalls = sim.counter("syscalls");
    (void)guest.State();  // sd-bus keeps the last message's fds until the next one
    const auto fds = daemon.openFds();

    const std::string code =
        "import dbus\n"
        "for what, call in [\n"
        " (\"property\", lambda c: c.call_blocking(None, \"/org/tio/Guest1\", \"org.freedesktop.DBus.Properties\", "
        "\"Get\", \"ss\", [\"org.tio.Guest1\", \"State\"])),\n"
        " (\"objects\", lambda c: c.call_blocking(None, \"/org/tio/Guest1\", \"org.freedesktop.DBus.ObjectManager\", "
        "\"GetManagedObjects\", \"\", [])),\n"
        " (\"introspect\", lambda c: c.call_blocking(None, \"" +
        std::string(dev) +
        "\", \"org.freedesktop.DBus.Introspectable\", \"Introspect\", \"\", [])),\n"
        " (\"teardown\", lambda c: c.call_blocking(None, \"/org/tio/Guest1\", \"org.tio.Guest1\", \"Teardown\", "
        "\"\", []))]:\n"
        "    try:\n"
        "        c = dbus.connection.Connection(\"" +
        daemon.address() +
        "\")\n"
        "        call(c); print(what, \"answered\")\n"
        "    except dbus.exceptions.DBusException as e:\n"
        "        print(what, \"refused\")\n";
    std::ofstream(sim.dir() + "/nobody.py") << code;
    const auto out =
        runCommand("setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 " + sim.dir() + "/nobody.py")
            .output;
    for (const char* what : {"property", "objects", "introspect", "teardown"}) {
        EXPECT_NE(out.find(std::string(what) + " refused"), std::string::npos) << what << "\n" << out;
    }
    EXPECT_EQ(out.find("answered"), std::string::npos) << out;
    EXPECT_EQ(guest.Clients(), 1U) << "a stranger never counts as a VMM client";
    EXPECT_EQ(guest.State(), "active");
    EXPECT_EQ(sim.counter("objects"), objects) << "nothing changed";
    EXPECT_EQ(sim.counter("syscalls"), syscalls) << "not one kernel call for a stranger";
    EXPECT_TRUE(eventually([&] { return daemon.openFds() == fds; })) << "every refused connection closed";
}

TEST_F(ClientsTest, SystemBusDoorReadsForAllMutatesForRootOnly) {
    const std::string env = "DBUS_SYSTEM_BUS_ADDRESS=" + bus.address() + " ";
    auto state = runCommand(env + "busctl get-property org.tio.Guest1.vm1 /org/tio/Guest1 org.tio.Guest1 State");
    EXPECT_EQ(state.status, 0) << state.output;
    EXPECT_NE(state.output.find("\"empty\""), std::string::npos) << state.output;
    auto tree = runCommand(env + "busctl tree org.tio.Guest1.vm1");
    EXPECT_NE(tree.output.find("/org/tio/Guest1"), std::string::npos) << tree.output;
    auto admin = runCommand(env + "busctl call org.tio.Guest1.vm1 /org/tio/Guest1 org.tio.Guest1 Teardown");
    EXPECT_EQ(admin.status, 0) << "root may mutate on the admin door: " << admin.output;
    if (!haveRootAndSetpriv()) GTEST_SKIP() << "needs root and setpriv to run a client as nobody";
    const std::string nobody = env + "setpriv --reuid=65534 --regid=65534 --clear-groups ";
    auto read = runCommand(nobody + "busctl get-property org.tio.Guest1.vm1 /org/tio/Guest1 org.tio.Guest1 Platform");
    EXPECT_EQ(read.status, 0) << read.output;
    auto dump = runCommand(nobody + "busctl call org.tio.Guest1.vm1 /org/tio/Guest1 org.tio.Guest1 DumpState");
    EXPECT_EQ(dump.status, 0) << "DumpState is read-only: " << dump.output;
    auto write = runCommand(nobody + "busctl call org.tio.Guest1.vm1 /org/tio/Guest1 org.tio.Guest1 Teardown");
    EXPECT_NE(write.status, 0);
    EXPECT_NE(write.output.find("ccess denied"), std::string::npos) << write.output;
}

TEST_F(ClientsTest, GdbusPassesAnFdAndGetsTheErrorName) {
    // busctl cannot send fds; gdbus can (toolchain.md 4d). /dev/null is not a VM.
    auto r = runCommand("gdbus call --address " + daemon.address() +
                        " --dest org.tio.Guest1.vm1 --object-path /org/tio/Guest1 --method org.tio.Guest1.AttachVm "
                        "\"@h 5\" \"{}\" 5</dev/null");
    EXPECT_NE(r.output.find("org.tio.Error.InvalidArgument"), std::string::npos) << r.output;
}

TEST_F(ClientsTest, TheDemoVmmCompletes) {
    auto r = runCommand(std::string(TIO_VMM_DEMO_PATH) + " --socket " + daemon.socket() + " --sim-kernel " +
                        sim.kernelSocket() + " --sim-control " + sim.controlSocket());
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("TDI run"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("demo complete"), std::string::npos) << r.output;
    EXPECT_EQ(sim.counter("machine_checks"), 0U);
}

TEST_F(ClientsTest, TioctlShowsTheGuestOnTheAdminDoor) {
    const std::string env = "DBUS_SYSTEM_BUS_ADDRESS=" + bus.address() + " ";
    const std::string tioctl = env + TIO_TIOCTL_PATH;
    // The demo VMM runs tioctl while its device is in RUN.
    auto r = runCommand(std::string(TIO_VMM_DEMO_PATH) + " --socket " + daemon.socket() + " --sim-kernel " +
                        sim.kernelSocket() + " --on-run \"" + tioctl + " list; " + tioctl + " show vm1; " + tioctl +
                        " dump vm1\"");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("vm1              active"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("device 0000:3a:00.0 (vfio0): attached yes, TDI run"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("\"tdiState\": \"run\""), std::string::npos) << r.output;
    auto bad = runCommand(tioctl + " show ../etc");
    EXPECT_NE(bad.status, 0);
    auto gone = runCommand(tioctl + " show vm9");
    EXPECT_NE(gone.status, 0) << gone.output;
    EXPECT_NE(gone.output.find("tioctl: org.freedesktop.DBus.Error.ServiceUnknown"), std::string::npos) << gone.output;
}

// The server's vtables are written by hand; the XML is the API's source (the client
// proxies are generated from it): what the daemon introspects must be the XML.
TEST_F(ClientsTest, IntrospectionMatchesTheXml) {
    const auto r = runCommand("/usr/bin/python3 " TIO_SOURCE_DIR "/tests/integration/introspection_matches_xml.py '" +
                              daemon.address() + "' " TIO_SOURCE_DIR "/daemon/dbus/xml " + sim.kernelSocket());
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("0 differences"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace tio::test
