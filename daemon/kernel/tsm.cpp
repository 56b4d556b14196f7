#include "kernel/tsm.hpp"

#include <algorithm>
#include <cerrno>

#include "kernel/kernel_error.hpp"
#include "kernel/pci_sysfs.hpp"

namespace tio::kernel {
namespace {

std::string tsmAttribute(const Bdf& bdf, const char* name) { return PciSysfs::devicePath(bdf) + "/tsm/" + name; }

}  // namespace

Result<Bdf> Tsm::dsmOf(const Bdf& bdf) {
    auto named = sys_->readAttribute(tsmAttribute(bdf, "dsm"));
    if (named) {
        const std::string value = PciSysfs::attributeValue(*named);
        if (!value.empty()) {
            const auto dsm = Bdf::parse(value);
            if (!dsm) return fail(Code::Kernel, "unparsable tsm/dsm of " + bdf.toString() + ": '" + value + "'");
            return *dsm;
        }
    } else if (named.error() != ENOENT) {
        return std::unexpected(kernelError("read tsm/dsm", named.error()));
    }
    // Not connected yet: a VF's DSM is its PF's function 0.
    auto pf = sys_->readLink(PciSysfs::devicePath(bdf) + "/physfn");
    if (!pf) {
        if (pf.error() != ENOENT) return std::unexpected(kernelError("readlink physfn", pf.error()));
        return bdf.dsm();
    }
    const auto slash = pf->rfind('/');
    const auto parsed = Bdf::parse(slash == std::string::npos ? *pf : pf->substr(slash + 1));
    if (!parsed) return fail(Code::Kernel, "unparsable physfn link of " + bdf.toString() + ": '" + *pf + "'");
    return parsed->dsm();
}

Result<bool> Tsm::tdispCapable(const Bdf& dsm) {
    auto entries = sys_->listDirectory(PciSysfs::devicePath(dsm) + "/tsm");
    if (!entries) {
        if (entries.error() == ENOENT) return false;  // no link TSM sees a security capability
        return std::unexpected(kernelError("list tsm/", entries.error()));
    }
    return std::find(entries->begin(), entries->end(), "bound") != entries->end();  // IDE-only without it
}

Result<std::string> Tsm::connectedTo(const Bdf& dsm) {
    auto r = sys_->readAttribute(tsmAttribute(dsm, "connect"));
    if (!r) return std::unexpected(kernelError("read tsm/connect", r.error()));
    return PciSysfs::attributeValue(*r);
}

Result<> Tsm::connect(const Bdf& dsm) {
    auto tsms = sys_->listDirectory("/sys/class/tsm");
    if (!tsms && tsms.error() != ENOENT) return std::unexpected(kernelError("list /sys/class/tsm", tsms.error()));
    for (const auto& name : tsms ? *tsms : std::vector<std::string>{}) {
        auto r = sys_->writeAttribute(tsmAttribute(dsm, "connect"), name);
        if (r || r.error() == EBUSY) return {};  // EBUSY: connected already, by someone
        if (r.error() != ENXIO) return std::unexpected(kernelError("write tsm/connect", r.error()));
        // ENXIO: a devsec TSM, which sets up no link; try the next.
    }
    return fail(Code::NotSupported, "no link TSM in /sys/class/tsm to connect " + dsm.toString() + " to");
}

Result<> Tsm::disconnect(const Bdf& dsm, const std::string& tsm) {
    auto r = sys_->writeAttribute(tsmAttribute(dsm, "disconnect"), tsm);
    if (!r) return std::unexpected(kernelError("write tsm/disconnect", r.error()));
    return {};
}

Result<std::string> Tsm::bound(const Bdf& bdf) {
    auto r = sys_->readAttribute(tsmAttribute(bdf, "bound"));
    if (!r) return std::unexpected(kernelError("read tsm/bound", r.error()));
    return PciSysfs::attributeValue(*r);
}

}  // namespace tio::kernel
