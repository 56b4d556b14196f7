#pragma once
// Benchmarks that time calls into tio-simkernel run the caller and the simulator on
// one CPU. A real kernel runs a syscall on the caller's CPU; a simulated one is a
// socket round trip to another process, and when the scheduler puts that process
// on another CPU of a virtual machine, every call waits for an idle vCPU to be woken
// (an IPI through the hypervisor, 40-70 us here against 5-8 us on one CPU), which
// also leaves the caller's caches cold for its own work after the call. Pinning
// before the simulator is spawned (children inherit the mask) measures the daemon's
// own time as it would be beside a real kernel; `--cpu spread` leaves placement to
// the scheduler, to see the other case.
#include <sched.h>

#include <string>

namespace tio::bench {

// Pins this process, and so everything it spawns later, to the CPU it runs on.
// Returns a description for the benchmark's header.
inline std::string pinToOneCpu() {
    const int cpu = ::sched_getcpu();
    cpu_set_t set;
    CPU_ZERO(&set);
    if (cpu >= 0) CPU_SET(cpu, &set);
    if (cpu < 0 || ::sched_setaffinity(0, sizeof set, &set) != 0)
        return "CPUs as the scheduler places them (pinning failed)";
    return "caller and simulator on CPU " + std::to_string(cpu) + " (--cpu spread: as the scheduler places them)";
}

}  // namespace tio::bench
