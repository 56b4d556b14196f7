#include "simkernel/sim_kernel.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "kernel/uapi/ioctl_encoding.hpp"
#include "kernel/uapi/iommufd_tsm_proposed.hpp"
#include "kernel/uapi/kvm.hpp"
#include "simkernel/sim_files.hpp"

namespace tio::sim {

using kernel::wire::Op;
using kernel::wire::Reply;
using kernel::wire::Request;

std::string_view toString(TdiState s) {
    switch (s) {
        case TdiState::Unlocked: return "unlocked";
        case TdiState::Locked: return "locked";
        case TdiState::Run: return "run";
        case TdiState::Error: return "error";
    }
    return "error";
}

void SimFile::put() noexcept {
    if (--refs_ == 0) {
        release();
        kernel_.destroyFile(this);
    }
}

std::optional<KernelProfile> parseKernelProfile(std::string_view s) {
    if (s == "7.3") return KernelProfile::V7_3;
    if (s == "7.4") return KernelProfile::V7_4;
    if (s == "proposed") return KernelProfile::Proposed;
    return std::nullopt;
}

std::string_view toString(KernelProfile p) {
    switch (p) {
        case KernelProfile::V7_3: return "7.3";
        case KernelProfile::V7_4: return "7.4";
        case KernelProfile::Proposed: return "proposed";
    }
    return "proposed";
}

SimKernel::SimKernel(Platform platform, KernelProfile profile, std::vector<PciFunction> functions)
    : platform_(platform), profile_(profile), functions_(std::move(functions)) {
    for (const char* name : {"iopte_map",
                             "iopte_unmap",
                             "iopte_split",
                             "iopte_merge",
                             "iotlb_flush",
                             "pages_unmapped",
                             "unsafe_replacements",
                             "iommu_faults",
                             "machine_checks",
                             "guests_poisoned",
                             "rmp_faults",
                             "gpt_faults",
                             "dma_ok",
                             "dma_blocked",
                             "stale_shared_dma",
                             "gmem_violations",
                             "areas_revoked_by_kernel",
                             "gmem_punched_pages",
                             "gmem_attribute_changes",
                             "gen_dma",
                             "gen_faults",
                             "tdi_errors",
                             "tsm_requests",
                             "tsm_state_changes",
                             "tsm_mmio_validated",
                             "syscalls",
                             "failures_injected"}) {
        counters_[name] = 0;
    }
}

SimKernel::~SimKernel() = default;  // SimServer's destructor has released every file

std::map<std::string, std::uint64_t> SimKernel::counters() const {
    auto c = counters_;
    c["open_files"] = files_.size();
    c["objects"] = objects_;
    c["failures_pending"] = pending_.size();
    return c;
}

void SimKernel::injectFailure(std::string op, unsigned nth, int err) { pending_.push_back({std::move(op), nth, err}); }

int SimKernel::shouldFail(std::string_view op) {
    count("syscalls");
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
        if (it->op != op && it->op != "*") continue;
        if (--it->countdown != 0) continue;
        const int err = it->err;
        pending_.erase(it);
        count("failures_injected");
        return err;
    }
    return 0;
}

kernel::SysResult<SimKernel::NewFile> SimKernel::install(std::unique_ptr<SimFile> file) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return std::unexpected(errno);
    NewFile nf{UniqueFd(sv[0]), UniqueFd(sv[1]), file.get()};
    // Before the client end leaves: every request on this file says who sent it.
    if (auto r = unixsock::passCredentials(nf.server.get()); !r) return std::unexpected(r.error());
    struct stat st {};
    if (::fstat(nf.client.get(), &st) < 0) return std::unexpected(errno);
    SimFile* raw = file.get();
    by_inode_[st.st_ino] = raw;
    inode_of_[raw] = st.st_ino;
    files_[raw] = std::move(file);
    raw->get();  // userspace's reference, dropped by closedByUser()
    if (watcher_ != nullptr) {
        auto server = nf.server.duplicate();
        if (!server) return std::unexpected(server.error());
        watcher_(watcher_ctx_, server->release(), raw);
    }
    return nf;
}

void SimKernel::closedByUser(SimFile* file) { file->put(); }

SimFile* SimKernel::resolve(int fd) const {
    struct stat st {};
    if (::fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) return nullptr;
    auto it = by_inode_.find(st.st_ino);
    return it == by_inode_.end() ? nullptr : it->second;
}

GuestMemfdFile* SimKernel::guestMemfdBackedBy(dev_t dev, ino_t ino) const {
    for (const auto& [ptr, file] : files_) {
        auto* gmem = dynamic_cast<GuestMemfdFile*>(ptr);
        if (gmem != nullptr && gmem->backedBy(dev, ino)) return gmem;
    }
    return nullptr;
}

void SimKernel::destroyFile(SimFile* file) {
    auto ino = inode_of_.find(file);
    if (ino != inode_of_.end()) {
        by_inode_.erase(ino->second);
        inode_of_.erase(ino);
    }
    files_.erase(file);
}

PciFunction* SimKernel::function(const Bdf& bdf) {
    for (auto& f : functions_)
        if (f.bdf == bdf) return &f;
    return nullptr;
}

PciFunction* SimKernel::functionByVfioIndex(unsigned index) {
    for (auto& f : functions_)
        if (f.vfio_index == index) return &f;
    return nullptr;
}

bool SimKernel::reply(int sock, int err, std::int64_t ret, std::span<const std::uint8_t> payload, int fd,
                      std::uint64_t a) {
    Reply r{.err = err, .ret = ret, .a = a, .seq = current_seq_};
    const int fds[1] = {fd};
    auto sent = kernel::wire::send(sock, kernel::wire::bytesOf(r), payload,
                                   fd >= 0 ? std::span<const int>(fds) : std::span<const int>());
    sent_ok_ = sent.has_value();
    return sent_ok_;
}

bool SimKernel::serve(int sock, SimFile* file, kernel::wire::Message msg) {
    if (msg.bytes.size() < sizeof(Request)) return reply(sock, EPROTO, -1);
    Request rq{};
    std::memcpy(&rq, msg.bytes.data(), sizeof rq);
    current_seq_ = rq.seq;
    if (rq.magic != kernel::wire::kMagic) return reply(sock, EPROTO, -1);
    const std::span<const std::uint8_t> payload(msg.bytes.data() + sizeof rq, msg.bytes.size() - sizeof rq);
    if (file == nullptr) {
        serveBroker(sock, rq, payload);
        return sent_ok_;
    }
    switch (rq.op) {
        case Op::Ioctl: serveIoctl(sock, *file, rq, msg); return sent_ok_;
        case Op::Fallocate: {
            if (const int e = shouldFail("FALLOCATE")) return reply(sock, e, -1);
            const int r = file->fallocate(static_cast<int>(rq.a), rq.b, rq.c);
            return reply(sock, r < 0 ? -r : 0, r);
        }
        case Op::MapPages: {
            const int fd = file->pagesFd();
            return fd < 0 ? reply(sock, -fd, -1) : reply(sock, 0, 0, {}, fd);
        }
        case Op::Identify: {
            const std::string l = file->link();
            return reply(sock, 0, static_cast<std::int64_t>(file->size()),
                         {reinterpret_cast<const std::uint8_t*>(l.data()), l.size()}, -1,
                         static_cast<std::uint64_t>(file->rdev()));
        }
        default: return reply(sock, EINVAL, -1);
    }
}

void SimKernel::serveBroker(int sock, const Request& rq, std::span<const std::uint8_t> payload) {
    const std::string text(payload.begin(), payload.end());
    switch (rq.op) {
        case Op::Open: {
            if (const int e = shouldFail("OPEN")) {
                reply(sock, e, -1);
                return;
            }
            auto f = openNode(text);
            if (!f) {
                reply(sock, f.error(), -1);
                return;
            }
            auto nf = install(std::move(*f));
            if (!nf) {
                reply(sock, nf.error(), -1);
                return;
            }
            reply(sock, 0, 0, {}, nf->client.get());
            return;
        }
        case Op::ReadAttr:
        case Op::ReadLink: {
            const bool link = rq.op == Op::ReadLink;
            if (const int e = shouldFail(link ? "SYSFS_READLINK" : "SYSFS_READ")) {
                reply(sock, e, -1);
                return;
            }
            auto v = link ? readLink(text) : readAttr(text);
            if (!v) {
                reply(sock, v.error(), -1);
                return;
            }
            reply(sock, 0, 0, {reinterpret_cast<const std::uint8_t*>(v->data()), v->size()});
            return;
        }
        case Op::WriteAttr: {
            if (const int e = shouldFail("SYSFS_WRITE")) {
                reply(sock, e, -1);
                return;
            }
            const auto nul = text.find('\0');
            if (nul == std::string::npos) {
                reply(sock, EINVAL, -1);
                return;
            }
            const int e = writeAttr(text.substr(0, nul), text.substr(nul + 1));
            reply(sock, e, e == 0 ? 0 : -1);
            return;
        }
        case Op::ListDir: {
            if (const int e = shouldFail("SYSFS_LIST")) {
                reply(sock, e, -1);
                return;
            }
            auto names = listDir(text);
            if (!names) {
                reply(sock, names.error(), -1);
                return;
            }
            std::string out;
            for (const auto& n : *names) {
                out += n;
                out.push_back('\0');
            }
            reply(sock, 0, 0, {reinterpret_cast<const std::uint8_t*>(out.data()), out.size()});
            return;
        }
        default: reply(sock, EINVAL, -1); return;
    }
}

void SimKernel::serveIoctl(int sock, SimFile& file, const Request& rq, kernel::wire::Message& msg) {
    using kernel::ArgKind;
    using kernel::Direction;
    using kernel::kNoField;
    const kernel::IoctlDesc* desc = kernel::findIoctl(rq.request);
    if (desc == nullptr) {
        reply(sock, ENOTTY, -1);
        return;
    }
    // An injected EAGAIN on an in-place conversion is the kernel's partial progress
    // (a pinned page stops it): the handler converts a prefix and says where it
    // stopped. Any other injected failure happens before the call does anything.
    const int injected = shouldFail(desc->name);
    const bool partial = injected == EAGAIN && desc->request == uapi::KVM_SET_MEMORY_ATTRIBUTES2;
    // An injected EFAULT on a TSM request is a copy-back that fails after the TSM
    // committed: the call runs, and nothing of its answer reaches the caller.
    const bool commit_then_fault = injected == EFAULT && desc->request == uapi::IOMMU_VDEVICE_TSM_REQ;
    // ETIMEDOUT: a kernel that hangs in the call. It is served, and answered late.
    const bool hang = injected == ETIMEDOUT;
    if (const int e = partial || commit_then_fault || hang ? 0 : injected) {
        // The struct goes back unchanged: an injected failure happens before any copy-out.
        const std::span<const std::uint8_t> payload(msg.bytes.data() + sizeof rq, msg.bytes.size() - sizeof rq);
        std::uint32_t size = 0;
        if (desc->kind == ArgKind::Struct) {
            size = desc->size_in_struct && payload.size() >= 4 ? *reinterpret_cast<const std::uint32_t*>(payload.data())
                                                               : uapi::iocSize(rq.request);
        }
        std::vector<std::uint8_t> out(payload.begin(), payload.begin() + std::min<std::size_t>(size, payload.size()));
        for (const auto& p : desc->pointers) {
            if (p.ptr_offset == kNoField || p.dir == Direction::In || p.ptr_offset + 8U > out.size()) continue;
            const auto len = kernel::pointerLength(p, out);
            out.resize(out.size() + (len ? *len : 0), 0);
        }
        reply(sock, e, -1, out);
        return;
    }

    IoctlCall call;
    call.desc = desc;
    call.value = rq.a;
    call.caller = msg.sender_pid;
    call.stop_partway = partial;
    std::uint32_t user_size = 0;
    if (desc->kind == ArgKind::Struct) {
        std::span<const std::uint8_t> payload(msg.bytes.data() + sizeof rq, msg.bytes.size() - sizeof rq);
        user_size = uapi::iocSize(rq.request);
        if (desc->size_in_struct) {
            if (payload.size() < 4) {
                reply(sock, EINVAL, -1);
                return;
            }
            std::memcpy(&user_size, payload.data(), 4);
        }
        if (payload.size() < user_size) {
            reply(sock, EFAULT, -1);
            return;
        }
        const auto user = payload.first(user_size);
        payload = payload.subspan(user_size);
        int err = 0;
        if (user_size < desc->min_size) err = EINVAL;
        // copy_struct_from_user: bytes beyond what the kernel knows must be zero.
        for (std::uint32_t i = desc->our_size; err == 0 && i < user_size; ++i)
            if (user[i] != 0) err = E2BIG;
        if (err != 0) {
            reply(sock, err, -1, std::vector<std::uint8_t>(user.begin(), user.end()));
            return;
        }
        call.arg.assign(std::max<std::size_t>(desc->our_size, user_size), 0);
        std::copy(user.begin(), user.end(), call.arg.begin());
        for (const auto& p : desc->pointers) {
            if (p.ptr_offset == kNoField || p.ptr_offset + 8U > user_size) {
                call.bufs.emplace_back();
                continue;
            }
            const auto len = kernel::pointerLength(p, call.arg).value_or(0);
            std::vector<std::uint8_t> buf(len, 0);
            if (p.dir != Direction::Out) {
                if (payload.size() < len) {
                    reply(sock, EFAULT, -1);
                    return;
                }
                std::copy(payload.begin(), payload.begin() + len, buf.begin());
                payload = payload.subspan(len);
            }
            call.bufs.push_back(std::move(buf));
        }
    }
    call.fds = std::move(msg.fds);
    std::vector<std::size_t> given(call.bufs.size());  // each buffer's length as the caller gave it
    std::transform(call.bufs.begin(), call.bufs.end(), given.begin(), [](const auto& b) { return b.size(); });

    const long r = file.ioctl(call);
    if (hang) ::usleep(kHangMicroseconds);
    if (commit_then_fault) {
        reply(sock, EFAULT, -1);
        return;
    }
    std::vector<std::uint8_t> out(call.arg.begin(), call.arg.begin() + user_size);
    for (std::size_t i = 0; i < desc->pointers.size() && i < call.bufs.size(); ++i) {
        const auto& p = desc->pointers[i];
        if (p.ptr_offset == kNoField || p.dir == Direction::In || p.ptr_offset + 8U > user_size) continue;
        // As long as the caller's buffer whatever the handler did: it reads by its lengths.
        call.bufs[i].resize(given[i], 0);
        out.insert(out.end(), call.bufs[i].begin(), call.bufs[i].end());
    }
    if (r < 0) {
        reply(sock, static_cast<int>(-r), -1, out);
        return;
    }
    reply(sock, 0, r, out, call.out_fd.get());
}

}  // namespace tio::sim
