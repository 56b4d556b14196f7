#include "service/private_sim.hpp"

#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

extern char** environ;

namespace tio::service {

std::unique_ptr<PrivateSim> PrivateSim::start(Platform platform) {
    std::unique_ptr<PrivateSim> sim(new PrivateSim());
    char tmpl[] = "/tmp/tio-managerd-sim-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return nullptr;
    sim->dir_ = tmpl;
    const auto here = std::filesystem::read_symlink("/proc/self/exe").parent_path();
    std::string path = here / "tio-simkernel";
    if (!std::filesystem::exists(path)) path = here.parent_path() / "bin" / "tio-simkernel";
    std::string control = sim->dir_ + "/sim.ctl";
    sim->kernel_socket_ = sim->dir_ + "/sim.kernel";
    std::string plat(toString(platform));
    std::vector<char*> argv = {path.data(),
                               const_cast<char*>("--platform"),
                               plat.data(),
                               const_cast<char*>("--control"),
                               control.data(),
                               const_cast<char*>("--kernel"),
                               sim->kernel_socket_.data(),
                               nullptr};
    if (::posix_spawn(&sim->pid_, path.c_str(), nullptr, nullptr, argv.data(), environ) != 0) return nullptr;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!std::filesystem::exists(control)) {
        if (std::chrono::steady_clock::now() > deadline) return nullptr;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    spdlog::info("event=private-simulator control={} kernel={}", control, sim->kernel_socket_);
    return sim;
}

PrivateSim::~PrivateSim() {
    if (pid_ > 0) {
        ::kill(pid_, SIGTERM);
        ::waitpid(pid_, nullptr, 0);
    }
    if (!dir_.empty()) {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
}

}  // namespace tio::service
