#pragma once
// The simulator releases a file when it sees EOF on its socket, which its event loop
// may handle after a control-door call sent later. Oracle checks that follow a
// close() therefore wait, with a bound, for the state to settle.
#include <chrono>
#include <thread>

namespace tio::test {

template <typename Pred>
[[nodiscard]] bool eventually(Pred&& pred, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        if (pred()) return true;
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
}

}  // namespace tio::test
