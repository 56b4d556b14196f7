#include "support/process.hpp"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <stdexcept>

#include "support/eventually.hpp"

extern char** environ;

namespace tio::test {

pid_t spawnProcess(std::vector<std::string> args, const std::vector<std::string>& env_extra) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_store;
    for (char** e = environ; *e != nullptr; ++e) env_store.emplace_back(*e);
    env_store.insert(env_store.end(), env_extra.begin(), env_extra.end());
    std::vector<char*> envp;
    for (auto& e : env_store) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_t pid = -1;
    if (::posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), envp.data()) != 0) {
        throw std::runtime_error("cannot start " + args[0]);
    }
    return pid;
}

void waitForPath(const std::string& path, const char* what) {
    if (!eventually([&] { return std::filesystem::exists(path); }, std::chrono::seconds(10))) {
        throw std::runtime_error(std::string(what) + " did not start");
    }
}

}  // namespace tio::test

namespace tio::test {

int stopProcess(pid_t& pid, int sig) {
    if (pid <= 0) return 0;
    ::kill(pid, sig);
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
    return status;
}

}  // namespace tio::test
