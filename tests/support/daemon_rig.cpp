#include "support/daemon_rig.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "support/process.hpp"

namespace tio::test {
namespace {

std::string readFile(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

}  // namespace

PrivateSystemBus::PrivateSystemBus() {
    const std::string& dir = dir_.path();
    std::filesystem::create_directory(dir + "/system.d");
    std::filesystem::copy_file(TIO_SOURCE_DIR "/policy/org.tio.Guest1.conf", dir + "/system.d/org.tio.Guest1.conf");
    std::string conf = readFile(TIO_SOURCE_DIR "/tests/data/system-bus.conf.in");
    for (auto pos = conf.find("@DIR@"); pos != std::string::npos; pos = conf.find("@DIR@")) conf.replace(pos, 5, dir);
    std::ofstream(dir + "/bus.conf") << conf;
    pid_ = spawnProcess({"/usr/bin/dbus-daemon", "--config-file=" + dir + "/bus.conf", "--nofork"});
    const std::string socket = dir + "/system_bus_socket";
    waitForPath(socket, "dbus-daemon");
    address_ = "unix:path=" + socket;
}

PrivateSystemBus::~PrivateSystemBus() {
    if (pid_ > 0) {
        ::kill(pid_, SIGTERM);
        ::waitpid(pid_, nullptr, 0);
    }
}

DaemonProcess::DaemonProcess(SimProcess& sim, const std::string& guest, const std::string& system_bus_address,
                             std::vector<std::string> extra) {
    socket_ = sim.dir() + "/" + guest + ".sock";
    std::vector<std::string> args = {TIO_MANAGERD_PATH, "--guest",          guest,
                                     "--sim-socket",    sim.kernelSocket(), "--listen",
                                     socket_,           "--claim-dir",      sim.dir() + "/claims"};
    bool from_policy = false;
    for (auto& e : extra) {
        if (e == kPlatformFromPolicy) from_policy = true;
        else args.push_back(std::move(e));
    }
    if (!from_policy) {
        args.emplace_back("--platform");
        args.push_back("sim-" + sim.platform());
    }
    if (system_bus_address.empty()) args.emplace_back("--no-system-bus");
    pid_ = spawnProcess(args, {"DBUS_SYSTEM_BUS_ADDRESS=" + system_bus_address});
    waitForPath(socket_, "tio-managerd");
}

int DaemonProcess::stop() { return stopProcess(pid_, SIGTERM); }

DaemonProcess::~DaemonProcess() { (void)stop(); }

std::vector<std::string> DaemonProcess::openFds() const {
    std::vector<std::string> links;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid_) + "/fd")) {
        auto link = std::filesystem::read_symlink(e.path(), ec);
        if (!ec) links.push_back(link.string());  // one closed while listing is not open
    }
    std::sort(links.begin(), links.end());
    return links;
}

CommandResult runCommand(const std::string& command) {
    CommandResult r;
    FILE* p = ::popen((command + " 2>&1").c_str(), "r");
    if (p == nullptr) return r;
    std::array<char, 4096> buf{};
    while (std::fgets(buf.data(), buf.size(), p) != nullptr) r.output += buf.data();
    r.status = ::pclose(p);
    return r;
}

}  // namespace tio::test
