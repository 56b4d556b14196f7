// The floor under an idle tio-managerd's RSS, for instance_bench: a C++ program
// that maps what any sd-bus daemon built like ours maps on this system (libc,
// libstdc++, libm, libgcc_s, the loader, libsystemd and the libraries it pulls
// in) and does nothing else. It starts a peer-to-peer sd-bus server on one end of
// a socketpair, creates the file named by its argument, and waits to be killed.
// Built twice: idle_floor_iostream also includes <iostream>, whose static
// initializer sets up the standard streams and their locale, as libprotobuf's own
// static constructors do in every process that links it (its headers and sources
// include <iostream>; with g++ 12 the set-up runs per translation unit that does).
//   idle_floor READY_PATH
#include <fcntl.h>
#include <sys/socket.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-id128.h>
#include <unistd.h>

#include <string>
#ifdef TIO_IDLE_FLOOR_IOSTREAM
#include <iostream>
#endif

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    const std::string ready = argv[1];  // libstdc++ in use, as in any C++ daemon
    int pair[2] = {-1, -1};
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) return 1;
    sd_bus* bus = nullptr;
    sd_id128_t id;
    if (sd_bus_new(&bus) < 0 || sd_id128_randomize(&id) < 0 || sd_bus_set_fd(bus, pair[0], pair[0]) < 0 ||
        sd_bus_set_server(bus, 1, id) < 0 || sd_bus_start(bus) < 0) {
        return 1;
    }
    const int fd = ::open(ready.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) return 1;
    ::close(fd);
    for (;;) ::pause();
}
