// The simulated TSM behind IOMMU_VDEVICE_TSM_REQ (RFC v7; iommufd_tsm_proposed.hpp),
// on the proposed profile only. The kernel relays; the TSM checks the architecture,
// the op, the payload and the TDI's state, and answers with an errno, a residue and
// its own tsm_code. TDISP messages carry the real 16-byte header and codes.
#include <algorithm>
#include <cerrno>
#include <cstring>

#include "kernel/iommufd.hpp"
#include "kernel/tdisp.hpp"
#include "kernel/uapi/iommufd_tsm_proposed.hpp"
#include "simkernel/sim_files.hpp"

namespace tio::sim {

using namespace tio::uapi;

namespace {

// The TSM's own status codes (tsm_code): 0 is success, and a TSM refusal that also
// fails the ioctl carries one of these. The values are the simulator's.
constexpr std::uint64_t kTsmBadState = 0x10;  // the TDI is not in a state the op allows
constexpr std::uint64_t kTsmBadRequest = 0x11;

constexpr std::uint32_t kObjectCount = 3;
// Sizes of the simulated objects: the certificate chain is larger than one 64 KiB
// response, so a reader must page through it.
constexpr std::array<std::size_t, kObjectCount> kObjectSize = {std::size_t{96} * 1024U, 2048U, 640U};

bool validObject(std::uint32_t object) { return object >= TSM_OBJECT_CERTIFICATES && object <= kObjectCount; }

template <typename T>
bool read(const std::vector<std::uint8_t>& buf, T& out) {
    if (buf.size() != sizeof(T)) return false;
    std::memcpy(&out, buf.data(), sizeof(T));
    return true;
}

template <typename T>
std::vector<std::uint8_t> bytesOf(const T& v) {
    std::vector<std::uint8_t> b(sizeof(T));
    std::memcpy(b.data(), &v, sizeof(T));
    return b;
}

}  // namespace

std::vector<std::uint8_t> SimKernel::evidence(const PciFunction& fn, std::uint32_t object) const {
    if (!validObject(object)) return {};
    const std::uint64_t generation = fn.evidence_generation[object - 1];
    // Bytes that differ per function, object and generation: a stale copy is told apart.
    std::vector<std::uint8_t> out(kObjectSize[object - 1]);
    std::uint64_t x =
        (std::uint64_t{kernel::tdispFunctionId(fn.bdf)} << 20U) ^ (std::uint64_t{object} << 56U) ^ generation;
    for (auto& b : out) {
        x ^= x << 13U;
        x ^= x >> 7U;
        x ^= x << 17U;
        b = static_cast<std::uint8_t>(x);
    }
    const std::string head = "tio-sim " + fn.bdf.toString() + " object " + std::to_string(object) + " generation " +
                             std::to_string(generation) + "\n";
    std::copy_n(head.begin(), std::min(head.size(), out.size()), out.begin());
    return out;
}

void SimKernel::setTdi(PciFunction& fn, TdiState to) {
    if (to == TdiState::Error && fn.tdi != TdiState::Error) count("tdi_errors");
    fn.tdi = to;
}

void SimKernel::configWrite(PciFunction& fn) {
    if (fn.tdi == TdiState::Locked || fn.tdi == TdiState::Run) setTdi(fn, TdiState::Error);
}

void SimKernel::unbindTdi(PciFunction& fn) {
    if (fn.tdi != TdiState::Unlocked) setTdi(fn, TdiState::Unlocked);
    fn.tsm_bound = false;
    fn.sev_dma = false;
}

long IommufdFile::tsmReq(IoctlCall& c) {
    auto q = c.get<iommu_vdevice_tsm_req>();
    std::uint64_t tsm_code = 0;
    const long r = tsmReqBody(c, tsm_code);
    q.tsm_code = tsm_code;  // copied back on every path
    c.put(q);
    return r;
}

long IommufdFile::tsmReqBody(IoctlCall& c, std::uint64_t& tsm_code) {
    const auto q = c.get<iommu_vdevice_tsm_req>();
    IommuObj* vdev = find(q.vdevice_id, ObjType::Vdevice);
    if (vdev == nullptr) return -ENOENT;
    if (q.tvm_arch != kernel::tvmArchFor(kernel_.platform())) return -EINVAL;
    PciFunction& fn = objects_.at(vdev->dev).device->function();
    if (!fn.tsm_bound) return -ENXIO;  // no TSM device context: not a vDEVICE that bound
    const auto& req = c.bufs[0];
    auto& resp = c.bufs[1];
    const bool locked_or_run = fn.tdi == TdiState::Locked || fn.tdi == TdiState::Run;
    std::vector<std::uint8_t> answer;
    const auto refuse = [&tsm_code](std::uint64_t code) {
        tsm_code = code;
        return -EINVAL;
    };

    switch (q.op) {
        case IOMMU_VDEVICE_TSM_REQ_SET_TDI_STATE: {
            if (req.size() != 1) return refuse(kTsmBadRequest);
            switch (req[0]) {
                case TDISP_CONFIG_LOCKED:  // LOCK_INTERFACE: the report and measurements are taken anew
                    if (fn.tdi != TdiState::Unlocked) return refuse(kTsmBadState);
                    kernel_.setTdi(fn, TdiState::Locked);
                    ++fn.evidence_generation[TSM_OBJECT_MEASUREMENTS - 1];
                    ++fn.evidence_generation[TSM_OBJECT_INTERFACE_REPORT - 1];
                    break;
                case TDISP_RUN:  // START_INTERFACE: legal only from CONFIG_LOCKED
                    if (fn.tdi != TdiState::Locked) return refuse(kTsmBadState);
                    kernel_.setTdi(fn, TdiState::Run);
                    break;
                case TDISP_CONFIG_UNLOCKED:  // STOP_INTERFACE, from any state
                    kernel_.setTdi(fn, TdiState::Unlocked);
                    fn.sev_dma = false;
                    break;
                default: return refuse(kTsmBadRequest);
            }
            kernel_.count("tsm_state_changes");
            break;
        }
        case IOMMU_VDEVICE_TSM_REQ_GET_TDI_STATE: {
            tdisp_header h{};
            if (!read(req, h) || h.version != kTdispVersion || h.message_type != TDISP_GET_DEVICE_INTERFACE_STATE ||
                h.function_id != kernel::tdispFunctionId(fn.bdf)) {
                return refuse(kTsmBadRequest);
            }
            h.message_type = TDISP_DEVICE_INTERFACE_STATE;
            answer = bytesOf(h);
            answer.push_back(static_cast<std::uint8_t>(fn.tdi));
            break;
        }
        case IOMMU_VDEVICE_TSM_REQ_VALIDATE_MMIO: {
            tsm_mmio_range range{};
            if (!read(req, range) || range.size == 0 || ((range.gpa | range.size) & 0xfffU) != 0) {
                return refuse(kTsmBadRequest);
            }
            if (!locked_or_run) return refuse(kTsmBadState);
            kernel_.count("tsm_mmio_validated");
            break;
        }
        case IOMMU_VDEVICE_TSM_REQ_OBJECT_INFO:
        case IOMMU_VDEVICE_TSM_REQ_OBJECT_REGENERATE: {
            std::uint32_t object = 0;
            if (!read(req, object) || !validObject(object)) return refuse(kTsmBadRequest);
            // The interface report describes a locked interface; there is none before LOCK.
            if (object == TSM_OBJECT_INTERFACE_REPORT && !locked_or_run) return refuse(kTsmBadState);
            if (q.op == IOMMU_VDEVICE_TSM_REQ_OBJECT_REGENERATE) {
                ++fn.evidence_generation[object - 1];
                break;
            }
            answer = bytesOf(
                tsm_object_info{.size = kObjectSize[object - 1], .generation = fn.evidence_generation[object - 1]});
            break;
        }
        case IOMMU_VDEVICE_TSM_REQ_OBJECT_READ: {
            tsm_object_read r{};
            if (!read(req, r) || !validObject(r.object) || r.__reserved != 0) return refuse(kTsmBadRequest);
            if (r.object == TSM_OBJECT_INTERFACE_REPORT && !locked_or_run) return refuse(kTsmBadState);
            const auto object = kernel_.evidence(fn, r.object);
            if (r.offset > object.size()) return refuse(kTsmBadRequest);
            const std::size_t n = std::min<std::size_t>(resp.size(), object.size() - r.offset);
            answer.assign(object.begin() + static_cast<long>(r.offset),
                          object.begin() + static_cast<long>(r.offset + n));
            break;
        }
        case IOMMU_VDEVICE_TSM_REQ_SEV_ENABLE_DMA:
        case IOMMU_VDEVICE_TSM_REQ_SEV_DISABLE_DMA:
            if (kernel_.platform() != Platform::Snp) return -EOPNOTSUPP;
            if (!req.empty()) return refuse(kTsmBadRequest);
            if (fn.tdi != TdiState::Run) return refuse(kTsmBadState);
            fn.sev_dma = q.op == IOMMU_VDEVICE_TSM_REQ_SEV_ENABLE_DMA;
            break;
        default: return -EOPNOTSUPP;
    }
    if (answer.size() > resp.size()) return -EMSGSIZE;
    std::copy(answer.begin(), answer.end(), resp.begin());
    kernel_.count("tsm_requests");
    return static_cast<long>(resp.size() - answer.size());  // the residue
}

}  // namespace tio::sim
