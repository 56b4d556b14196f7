// The simulated device nodes and sysfs tree (kernel-uapi.md 2.1; the PCI TSM as merged
// in 6.19, kernel-as-it-is.md 6):
//   /dev/kvm, /dev/iommu, /dev/vfio/devices/vfioN
//   /sys/bus/pci/devices/<bdf>/{vfio-dev/vfioN/dev, physfn (a VF's link to its PF),
//                               tsm/{connect,disconnect,dsm,bound}}
//   /sys/class/tsm/tsmN
#include <sys/sysmacros.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "simkernel/sim_files.hpp"

namespace tio::sim {
namespace {

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

std::string toHex4(std::uint16_t v) {
    char out[5];
    std::snprintf(out, sizeof out, "%04x", v);
    return out;
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

Bdf SimKernel::dsmOf(const PciFunction& fn) {
    const Bdf pf = fn.physfn.value_or(fn.bdf);
    const Bdf zero{pf.domain, pf.bus, pf.device, 0};
    const PciFunction* f0 = function(zero);
    return f0 != nullptr && f0->behind ? *f0->behind : zero;
}

int SimKernel::checkVfToken(const PciFunction& fn, const std::vector<std::uint8_t>* token) {
    const PciFunction* pf = fn.physfn ? function(*fn.physfn) : &fn;
    const auto& secret = pf != nullptr ? pf->vf_token : std::nullopt;
    if (token == nullptr) return fn.physfn && secret ? -EACCES : 0;  // "VF token required"
    if (!secret) return -EINVAL;                                     // a token nobody set
    if (token->size() != 16 || !std::equal(token->begin(), token->end(), secret->begin())) return -EACCES;
    return 0;
}

bool SimKernel::tsmGroupVisible(const PciFunction& fn) {
    if (dsmOf(fn) == fn.bdf) return fn.tdisp || fn.ide_only;  // a link TSM registered
    const PciFunction* dsm = function(dsmOf(fn));
    return fn.tdisp && dsm != nullptr && dsm->tsm_connected;
}

namespace {

// The link TSM's name (the one a DSM connects to).
std::string linkTsm(const std::vector<std::pair<std::string, bool>>& tsms) {
    for (const auto& [name, link] : tsms)
        if (link) return name;
    return {};
}

}  // namespace

kernel::SysResult<std::vector<std::string>> SimKernel::listDir(const std::string& path) {
    const auto p = split(path);
    if (p == std::vector<std::string>{"sys", "class", "tsm"}) {
        std::vector<std::string> names;
        names.reserve(tsms_.size());
        for (const auto& [name, link] : tsms_) names.push_back(name);
        return names;
    }
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
    const bool group = tsmGroupVisible(*fn);
    if (p.size() == 5) {
        std::vector<std::string> names;
        if (fn->physfn) names.emplace_back("physfn");
        if (group) names.emplace_back("tsm");
        names.emplace_back("vfio-dev");
        return names;
    }
    if (p.size() == 6 && p[5] == "vfio-dev") return std::vector<std::string>{"vfio" + std::to_string(fn->vfio_index)};
    if (p.size() == 6 && p[5] == "tsm" && group) {
        if (dsmOf(*fn) != fn->bdf) return std::vector<std::string>{"bound", "dsm"};
        if (fn->ide_only) return std::vector<std::string>{"connect", "disconnect", "dsm"};  // not TDISP
        return std::vector<std::string>{"bound", "connect", "disconnect", "dsm"};
    }
    return std::unexpected(ENOENT);
}

kernel::SysResult<std::string> SimKernel::readLink(const std::string& path) {
    const auto p = split(path);
    if (!isPciDevicesDir(p) || p.size() < 5 || p.size() > 6) return std::unexpected(ENOENT);
    const auto bdf = Bdf::parse(p[4]);
    PciFunction* fn = bdf ? function(*bdf) : nullptr;
    if (fn == nullptr) return std::unexpected(ENOENT);
    if (p.size() == 6) {
        if (p[5] != "physfn" || !fn->physfn) return std::unexpected(ENOENT);
        return "../" + fn->physfn->toString();
    }
    // The device's place in the hierarchy: under a root port, or under a switch's
    // downstream port below its upstream port.
    std::string at = "../../../devices/pci" + toHex4(bdf->domain) + ":00/" + toHex4(bdf->domain) + ":00:01.0/";
    if (fn->behind) {
        const Bdf down{fn->behind->domain, static_cast<std::uint8_t>(fn->behind->bus + 1), 0, 0};
        at += fn->behind->toString() + "/" + down.toString() + "/";
    }
    return at + bdf->toString();
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
    if (p.size() == 6 && p[5] == "physfn") return std::unexpected(EISDIR);  // a link to a directory
    if (p.size() != 7 || p[5] != "tsm" || !tsmGroupVisible(*fn)) return std::unexpected(ENOENT);
    const bool is_dsm = dsmOf(*fn) == fn->bdf;
    const PciFunction* dsm = function(dsmOf(*fn));
    const bool connected = dsm != nullptr && dsm->tsm_connected;
    // Empty until connected: the DSM is named once the TSM knows it.
    if (p[6] == "dsm") return connected ? dsmOf(*fn).toString() + "\n" : std::string("\n");
    if (p[6] == "bound" && !fn->ide_only) return fn->tsm_bound ? linkTsm(tsms_) + "\n" : std::string("\n");
    if (p[6] == "connect" && is_dsm) return connected ? linkTsm(tsms_) + "\n" : std::string("\n");
    if (p[6] == "disconnect" && is_dsm) return std::unexpected(EACCES);  // write-only
    return std::unexpected(ENOENT);
}

int SimKernel::writeAttr(const std::string& path, const std::string& raw) {
    const auto p = split(path);
    if (!isPciDevicesDir(p) || p.size() != 7 || p[5] != "tsm") return ENOENT;
    const auto bdf = Bdf::parse(p[4]);
    PciFunction* fn = bdf ? function(*bdf) : nullptr;
    if (fn == nullptr || !tsmGroupVisible(*fn) || dsmOf(*fn) != fn->bdf) return ENOENT;
    const std::string value = stripNewline(raw);
    const auto tsm = std::find_if(tsms_.begin(), tsms_.end(), [&](const auto& t) { return t.first == value; });
    if (p[6] == "connect") {
        if (tsm == tsms_.end()) return EINVAL;
        if (!tsm->second) return ENXIO;  // a devsec TSM has no link to set up
        if (fn->tsm_connected) return EBUSY;
        fn->tsm_connected = true;
        return 0;
    }
    if (p[6] == "disconnect") {
        if (tsm == tsms_.end() || !tsm->second) return EINVAL;
        if (!fn->tsm_connected) return ENXIO;
        // Disconnect first unbinds every bound TDI of the DSM (kernel-uapi.md 4.1).
        for (auto& f : functions_)
            if (dsmOf(f) == fn->bdf) unbindTdi(f);
        fn->tsm_connected = false;
        return 0;
    }
    return EACCES;
}

}  // namespace tio::sim
