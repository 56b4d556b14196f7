#pragma once
// Two-phase creation (style rule 11): each kernel step that succeeded registers how
// to undo itself; unless commit() is called, the undo steps run in reverse order when
// the guard goes out of scope. Undo steps must not fail in a way that matters: the
// kernel converges when the fds close, so their errors are ignored.
#include <functional>
#include <vector>

namespace tio::core {

class Rollback {
public:
    Rollback() { undo_.reserve(8); }  // a conversion registers a handful: one allocation
    Rollback(const Rollback&) = delete;
    Rollback& operator=(const Rollback&) = delete;
    ~Rollback() {
        if (committed_) return;
        for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) (*it)();
    }
    void add(std::function<void()> undo) { undo_.push_back(std::move(undo)); }
    void commit() noexcept { committed_ = true; }

private:
    std::vector<std::function<void()>> undo_;
    bool committed_ = false;
};

}  // namespace tio::core
