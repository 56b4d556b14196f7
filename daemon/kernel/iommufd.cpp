#include "kernel/iommufd.hpp"

#include <fcntl.h>

#include <cerrno>

#include "kernel/ioctl_call.hpp"
#include "kernel/uapi/iommufd.hpp"
#include "kernel/uapi/iommufd_reshape_proposed.hpp"
#include "kernel/uapi/iommufd_tsm_proposed.hpp"

namespace tio::kernel {

using namespace tio::uapi;

std::uint32_t viommuTypeFor(Platform platform, bool tsm) {
    switch (platform) {
        case Platform::Tdx: return tsm ? kViommuTypeTdxPlaceholder : IOMMU_VIOMMU_TYPE_DEFAULT;
        case Platform::Snp: return tsm ? kViommuTypeSevPlaceholder : IOMMU_VIOMMU_TYPE_DEFAULT;
        case Platform::Cca: return tsm ? IOMMU_VIOMMU_TYPE_ARM_REALM_SMMUV3 : IOMMU_VIOMMU_TYPE_ARM_SMMUV3;
    }
    return IOMMU_VIOMMU_TYPE_DEFAULT;
}

bool isTsmViommuType(std::uint32_t type) {
    return type == kViommuTypeTdxPlaceholder || type == kViommuTypeSevPlaceholder ||
           type == IOMMU_VIOMMU_TYPE_ARM_REALM_SMMUV3;
}

std::string_view viommuTypeName(std::uint32_t type) {
    switch (type) {
        case kViommuTypeTdxPlaceholder: return "tdx-connect";
        case kViommuTypeSevPlaceholder: return "sev-tio";
        case IOMMU_VIOMMU_TYPE_ARM_REALM_SMMUV3: return "arm-realm-smmuv3";
        case IOMMU_VIOMMU_TYPE_ARM_SMMUV3: return "arm-smmuv3";
        default: return "unknown";
    }
}

std::uint32_t tvmArchFor(Platform platform) {
    switch (platform) {
        case Platform::Tdx: return kTvmArchTdxPlaceholder;
        case Platform::Snp: return kTvmArchSevPlaceholder;
        case Platform::Cca: return IOMMU_TVM_ARCH_CCA;
    }
    return 0;
}

template <typename T>
static T sized() {
    T v{};
    v.size = sizeof(T);
    return v;
}

Result<Iommufd> Iommufd::open(Syscalls& sys) {
    auto fd = sys.open("/dev/iommu", O_RDWR);
    if (!fd) return std::unexpected(kernelError("open /dev/iommu", fd.error()));
    return Iommufd(sys, std::move(*fd));
}

Result<Iommufd> Iommufd::adopt(Syscalls& sys, UniqueFd fd, std::uint32_t ioas) {
    Iommufd i(sys, std::move(fd));
    if (auto r = i.iovaRanges(ioas); !r)
        return fail(Code::InvalidArgument,
                    "the fd is not an iommufd with IOAS " + std::to_string(ioas) + ": " + r.error().message);
    return i;
}

Result<std::uint32_t> Iommufd::allocIoas() {
    auto a = sized<iommu_ioas_alloc>();
    if (auto r = ioctlStruct(*sys_, fd(), IOMMU_IOAS_ALLOC, a); !r) return std::unexpected(r.error());
    if (auto ok = requireOutput(a.out_ioas_id != 0, IOMMU_IOAS_ALLOC, "ioas id 0"); !ok) {
        return std::unexpected(ok.error());
    }
    return a.out_ioas_id;
}

Result<> Iommufd::destroy(std::uint32_t id) {
    auto d = sized<iommu_destroy>();
    d.id = id;
    if (auto r = ioctlStruct(*sys_, fd(), IOMMU_DESTROY, d); !r) return std::unexpected(r.error());
    return {};
}

Result<> Iommufd::mapFile(std::uint32_t ioas, int file_fd, std::uint64_t start, std::uint64_t length,
                          std::uint64_t iova, bool writeable) {
    auto m = sized<iommu_ioas_map_file>();
    m.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | (writeable ? IOMMU_IOAS_MAP_WRITEABLE : 0U);
    m.ioas_id = ioas;
    m.fd = file_fd;
    m.start = start;
    m.length = length;
    m.iova = iova;
    if (auto r = ioctlStruct(*sys_, fd(), IOMMU_IOAS_MAP_FILE, m); !r) return std::unexpected(r.error());
    return {};
}

Result<> Iommufd::mapAddress(std::uint32_t ioas, std::uint64_t address, std::uint64_t length, std::uint64_t iova,
                             bool writeable) {
    auto m = sized<iommu_ioas_map>();
    m.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | (writeable ? IOMMU_IOAS_MAP_WRITEABLE : 0U);
    m.ioas_id = ioas;
    m.user_va = address;
    m.length = length;
    m.iova = iova;
    if (auto r = ioctlStruct(*sys_, fd(), IOMMU_IOAS_MAP, m); !r) return std::unexpected(r.error());
    return {};
}

Result<> Iommufd::reshape(std::uint32_t ioas, std::uint32_t op, std::uint64_t iova, std::uint64_t length,
                          std::uint64_t max_pgsize) {
    auto r = sized<iommu_ioas_reshape>();
    r.ioas_id = ioas;
    r.op = op;
    r.iova = iova;
    r.length = length;
    r.max_pgsize = max_pgsize;
    if (auto res = ioctlStruct(*sys_, fd(), IOMMU_IOAS_RESHAPE, r); !res) return std::unexpected(res.error());
    return {};
}

Result<> Iommufd::splitArea(std::uint32_t ioas, std::uint64_t iova) {
    return reshape(ioas, IOMMU_IOAS_RESHAPE_SPLIT, iova, 0, 0);
}

Result<> Iommufd::joinAreas(std::uint32_t ioas, std::uint64_t iova) {
    return reshape(ioas, IOMMU_IOAS_RESHAPE_JOIN, iova, 0, 0);
}

Result<> Iommufd::limitPageSize(std::uint32_t ioas, std::uint64_t iova, std::uint64_t length,
                                std::uint64_t max_pgsize) {
    return reshape(ioas, IOMMU_IOAS_RESHAPE_LIMIT, iova, length, max_pgsize);
}

Result<std::uint64_t> Iommufd::unmap(std::uint32_t ioas, std::uint64_t iova, std::uint64_t length) {
    auto u = sized<iommu_ioas_unmap>();
    u.ioas_id = ioas;
    u.iova = iova;
    u.length = length;
    if (auto r = ioctlStruct(*sys_, fd(), IOMMU_IOAS_UNMAP, u); !r) return std::unexpected(r.error());
    return u.length;
}

Result<std::vector<IovaRange>> Iommufd::iovaRanges(std::uint32_t ioas) {
    // Two-call pattern (as QEMU): EMSGSIZE tells the real count.
    std::vector<iommu_iova_range> buf(4);
    for (int attempt = 0; attempt < 3; ++attempt) {
        auto q = sized<iommu_ioas_iova_ranges>();
        q.ioas_id = ioas;
        q.num_iovas = static_cast<std::uint32_t>(buf.size());
        q.allowed_iovas = reinterpret_cast<std::uint64_t>(buf.data());
        auto r = sys_->ioctl(fd(), IOMMU_IOAS_IOVA_RANGES, reinterpret_cast<unsigned long>(&q));
        if (!r && r.error() == EMSGSIZE && q.num_iovas > buf.size() && q.num_iovas <= 4096) {
            buf.resize(q.num_iovas);
            continue;
        }
        if (!r) return std::unexpected(kernelError("IOMMU_IOAS_IOVA_RANGES", r.error()));
        std::vector<IovaRange> out;
        for (std::uint32_t i = 0; i < q.num_iovas && i < buf.size(); ++i) out.push_back({buf[i].start, buf[i].last});
        return out;
    }
    return fail(Code::Internal, "IOMMU_IOAS_IOVA_RANGES kept growing");
}

Result<std::uint32_t> Iommufd::allocNestParentHwpt(std::uint32_t dev_id, std::uint32_t ioas) {
    auto h = sized<iommu_hwpt_alloc>();
    h.flags = IOMMU_HWPT_ALLOC_NEST_PARENT;
    h.dev_id = dev_id;
    h.pt_id = ioas;
    h.data_type = IOMMU_HWPT_DATA_NONE;
    if (auto r = ioctlStruct(*sys_, fd(), IOMMU_HWPT_ALLOC, h); !r) return std::unexpected(r.error());
    if (auto ok = requireOutput(h.out_hwpt_id != 0, IOMMU_HWPT_ALLOC, "hwpt id 0"); !ok) {
        return std::unexpected(ok.error());
    }
    return h.out_hwpt_id;
}

Result<HwInfo> Iommufd::hwInfo(std::uint32_t dev_id) {
    auto h = sized<iommu_hw_info>();
    h.dev_id = dev_id;  // data_len 0: capability probe only
    if (auto r = ioctlStruct(*sys_, fd(), IOMMU_GET_HW_INFO, h); !r) return std::unexpected(r.error());
    return HwInfo{h.out_data_type, h.out_capabilities};
}

Result<std::uint32_t> Iommufd::allocViommu(std::uint32_t dev_id, std::uint32_t hwpt, std::uint32_t type) {
    auto v = sized<iommu_viommu_alloc>();
    v.type = type;
    v.dev_id = dev_id;
    v.hwpt_id = hwpt;
    if (auto r = ioctlStruct(*sys_, fd(), IOMMU_VIOMMU_ALLOC, v); !r) return std::unexpected(r.error());
    if (auto ok = requireOutput(v.out_viommu_id != 0, IOMMU_VIOMMU_ALLOC, "viommu id 0"); !ok) {
        return std::unexpected(ok.error());
    }
    return v.out_viommu_id;
}

Result<std::uint32_t> Iommufd::allocVdevice(std::uint32_t viommu, std::uint32_t dev_id, std::uint64_t virt_id) {
    auto v = sized<iommu_vdevice_alloc>();
    v.viommu_id = viommu;
    v.dev_id = dev_id;
    v.virt_id = virt_id;
    if (auto r = ioctlStruct(*sys_, fd(), IOMMU_VDEVICE_ALLOC, v); !r) return std::unexpected(r.error());
    if (auto ok = requireOutput(v.out_vdevice_id != 0, IOMMU_VDEVICE_ALLOC, "vdevice id 0"); !ok) {
        return std::unexpected(ok.error());
    }
    return v.out_vdevice_id;
}

namespace {

std::uint32_t uapiOp(TsmOp op) {
    switch (op) {
        case TsmOp::SetTdiState: return IOMMU_VDEVICE_TSM_REQ_SET_TDI_STATE;
        case TsmOp::ValidateMmio: return IOMMU_VDEVICE_TSM_REQ_VALIDATE_MMIO;
        case TsmOp::ObjectInfo: return IOMMU_VDEVICE_TSM_REQ_OBJECT_INFO;
        case TsmOp::ObjectRead: return IOMMU_VDEVICE_TSM_REQ_OBJECT_READ;
        case TsmOp::ObjectRegenerate: return IOMMU_VDEVICE_TSM_REQ_OBJECT_REGENERATE;
        case TsmOp::SevEnableDma: return IOMMU_VDEVICE_TSM_REQ_SEV_ENABLE_DMA;
        case TsmOp::SevDisableDma: return IOMMU_VDEVICE_TSM_REQ_SEV_DISABLE_DMA;
        case TsmOp::GetTdiState: return IOMMU_VDEVICE_TSM_REQ_GET_TDI_STATE;
    }
    return 0;
}

}  // namespace

Result<TsmAnswer> Iommufd::tsmRequest(std::uint32_t vdevice, TsmOp op, std::uint32_t tvm_arch,
                                      std::span<const std::uint8_t> request, std::uint32_t response_capacity) {
    TsmAnswer answer;
    answer.response.resize(response_capacity);
    auto q = sized<iommu_vdevice_tsm_req>();
    q.vdevice_id = vdevice;
    q.op = uapiOp(op);
    q.tvm_arch = tvm_arch;
    q.req_len = static_cast<std::uint32_t>(request.size());
    q.resp_len = response_capacity;
    q.req_uptr = reinterpret_cast<std::uint64_t>(request.data());
    q.resp_uptr = reinterpret_cast<std::uint64_t>(answer.response.data());
    auto r = sys_->ioctl(fd(), IOMMU_VDEVICE_TSM_REQ, reinterpret_cast<unsigned long>(&q));
    answer.tsm_code = q.tsm_code;  // copied back on every path
    if (!r) {
        answer.error = r.error();
        answer.response.clear();
        return answer;
    }
    // A negative residue cannot come back as success; more than was offered is the
    // caller's to judge (residuePlausible), with nothing of the buffer trusted.
    answer.residue = static_cast<std::uint64_t>(*r);
    if (answer.residue > response_capacity) answer.response.clear();
    else answer.response.resize(response_capacity - answer.residue);
    return answer;
}

}  // namespace tio::kernel
