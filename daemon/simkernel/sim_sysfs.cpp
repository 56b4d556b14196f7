// The simulated device nodes and sysfs tree (kernel-uapi.md 2.1 and 4.1):
//   /dev/kvm, /dev/iommu, /dev/vfio/devices/vfioN
//   /sys/bus/pci/devices/<bdf>/{vfio-dev/vfioN/dev, tsm/{connect,disconnect,dsm,bound}}
//   /sys/class/tsm/tsm0
#include <sys/sysmacros.h>

#include <cerrno>

#include "simkernel/sim_files.hpp"

namespace tio::sim {
namespace {

constexpr std::string_view kTsmName = "tsm0";

std::vector<std::string> split(const std::string& path) {
    std::vector<std::string> parts;
    std::string cur;
    for (char c : path) {
        if (c == '/') {
            if (!cur.empty()) parts.push_back(std::move(cur));
            cur.clear();
        } else {
            cur.push_back(c);
        }
    }
    if (!cur.empty()) parts.push_back(std::move(cur));
    return parts;
}

bool isPciDevicesDir(const std::vector<std::string>& p) {
    return p.size() >= 4 && p[0] == "sys" && p[1] == "bus" && p[2] == "pci" && p[3] == "devices";
}

std::string stripNewline(std::string v) {
    if (!v.empty() && v.back() == '\n') v.pop_back();
    return v;
}

}  // namespace

kernel::SysResult<std::unique_ptr<SimFile>> SimKernel::openNode(const std::string& path) {
    if (path == "/dev/kvm") return std::make_unique<KvmSystemFile>(*this);
    if (path == "/dev/iommu") return std::make_unique<IommufdFile>(*this);
    constexpr std::string_view kVfio = "/dev/vfio/devices/vfio";
    if (path.starts_with(kVfio)) {
        const std::string num = path.substr(kVfio.size());
        if (num.empty() || num.size() > 4 || num.find_first_not_of("0123456789") != std::string::npos)
            return std::unexpected(ENOENT);
        PciFunction* fn = functionByVfioIndex(static_cast<unsigned>(std::stoul(num)));
        if (fn == nullptr) return std::unexpected(ENOENT);
        return std::make_unique<VfioDeviceFile>(*this, *fn);
    }
    return std::unexpected(ENOENT);
}

kernel::SysResult<std::vector<std::string>> SimKernel::listDir(const std::string& path) {
    const auto p = split(path);
    if (p == std::vector<std::string>{"sys", "class", "tsm"}) return std::vector<std::string>{std::string(kTsmName)};
    if (!isPciDevicesDir(p)) return std::unexpected(ENOENT);
    if (p.size() == 4) {
        std::vector<std::string> names;
        names.reserve(functions_.size());
        for (const auto& f : functions_) names.push_back(f.bdf.toString());
        return names;
    }
    const auto bdf = Bdf::parse(p[4]);
    PciFunction* fn = bdf ? function(*bdf) : nullptr;
    if (fn == nullptr) return std::unexpected(ENOENT);
    if (p.size() == 5) {
        std::vector<std::string> names{"vfio-dev"};
        if (fn->tdisp) names.emplace_back("tsm");
        return names;
    }
    if (p.size() == 6 && p[5] == "vfio-dev") return std::vector<std::string>{"vfio" + std::to_string(fn->vfio_index)};
    if (p.size() == 6 && p[5] == "tsm" && fn->tdisp) {
        if (fn->bdf.function == 0) return std::vector<std::string>{"bound", "connect", "disconnect", "dsm"};
        return std::vector<std::string>{"bound", "dsm"};
    }
    return std::unexpected(ENOENT);
}

kernel::SysResult<std::string> SimKernel::readAttr(const std::string& path) {
    // The in-place conversion series' module parameter (0444, on by default).
    if (path == "/sys/module/kvm/parameters/gmem_in_place_conversion") {
        if (!inPlaceConversion()) return std::unexpected(ENOENT);
        return std::string("Y\n");
    }
    const auto p = split(path);
    if (!isPciDevicesDir(p) || p.size() < 6) return std::unexpected(ENOENT);
    const auto bdf = Bdf::parse(p[4]);
    PciFunction* fn = bdf ? function(*bdf) : nullptr;
    if (fn == nullptr) return std::unexpected(ENOENT);
    if (p.size() == 8 && p[5] == "vfio-dev" && p[6] == "vfio" + std::to_string(fn->vfio_index) && p[7] == "dev")
        return std::to_string(kVfioMajor) + ":" + std::to_string(fn->vfio_index) + "\n";
    if (p.size() != 7 || p[5] != "tsm" || !fn->tdisp) return std::unexpected(ENOENT);
    PciFunction* dsm = function(fn->bdf.dsm());
    if (p[6] == "dsm") return fn->bdf.dsm().toString() + "\n";
    if (p[6] == "bound") return fn->tsm_bound ? std::string(kTsmName) + "\n" : std::string("\n");
    if (p[6] == "connect" && fn->bdf.function == 0)
        return (dsm != nullptr && dsm->tsm_connected) ? std::string(kTsmName) + "\n" : std::string("\n");
    if (p[6] == "disconnect" && fn->bdf.function == 0) return std::unexpected(EACCES);  // write-only
    return std::unexpected(ENOENT);
}

int SimKernel::writeAttr(const std::string& path, const std::string& raw) {
    const auto p = split(path);
    if (!isPciDevicesDir(p) || p.size() != 7 || p[5] != "tsm") return ENOENT;
    const auto bdf = Bdf::parse(p[4]);
    PciFunction* fn = bdf ? function(*bdf) : nullptr;
    if (fn == nullptr || !fn->tdisp || fn->bdf.function != 0) return ENOENT;
    const std::string value = stripNewline(raw);
    if (p[6] == "connect") {
        if (!value.starts_with("tsm")) return EINVAL;
        if (value != kTsmName) return ENXIO;
        if (fn->tsm_connected) return EBUSY;
        fn->tsm_connected = true;
        return 0;
    }
    if (p[6] == "disconnect") {
        if (value != kTsmName) return EINVAL;
        if (!fn->tsm_connected) return ENXIO;
        // Disconnect first unbinds every bound TDI of the DSM (kernel-uapi.md 4.1).
        for (auto& f : functions_)
            if (f.bdf.dsm() == fn->bdf) unbindTdi(f);
        fn->tsm_connected = false;
        return 0;
    }
    return EACCES;
}

}  // namespace tio::sim
