#include "kernel/tsm.hpp"

#include <algorithm>
#include <cerrno>
#include <vector>

#include "kernel/kernel_error.hpp"
#include "kernel/pci_sysfs.hpp"

namespace tio::kernel {
namespace {

std::string tsmAttribute(const Bdf& bdf, const char* name) { return PciSysfs::devicePath(bdf) + "/tsm/" + name; }

// "../../devices/a/b" -> {"..", "..", "devices", "a", "b"} (never empty).
std::vector<std::string> pathElements(const std::string& path) {
    std::vector<std::string> parts{""};
    for (char c : path) {
        if (c != '/') parts.back().push_back(c);
        else if (!parts.back().empty()) parts.emplace_back();
    }
    if (parts.size() > 1 && parts.back().empty()) parts.pop_back();
    return parts;
}

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
    // Not connected yet: function 0 of the function's PF (a VF's physfn) or its own
    // slot, unless a switch upstream port above that function 0 is the DSM.
    Bdf zero = bdf.dsm();
    auto pf = sys_->readLink(PciSysfs::devicePath(bdf) + "/physfn");
    if (pf) {
        const auto parsed = Bdf::parse(pathElements(*pf).back());
        if (!parsed) return fail(Code::Kernel, "unparsable physfn link of " + bdf.toString() + ": '" + *pf + "'");
        zero = parsed->dsm();
    } else if (pf.error() != ENOENT) {
        return std::unexpected(kernelError("readlink physfn", pf.error()));
    }
    auto port = switchUpstreamPort(zero);
    if (!port) return std::unexpected(port.error());
    return port->value_or(zero);
}

Result<std::optional<Bdf>> Tsm::switchUpstreamPort(const Bdf& zero) {
    // /sys/bus/pci/devices/X links to .../<upstream port>/<downstream port>/X; it is
    // the DSM when a link TSM sees it as one (its tsm/ group has `connect`).
    auto where = sys_->readLink(PciSysfs::devicePath(zero));
    if (!where) return std::unexpected(kernelError("readlink " + PciSysfs::devicePath(zero), where.error()));
    const auto parts = pathElements(*where);
    if (parts.size() < 3) return std::optional<Bdf>{};
    const auto port = Bdf::parse(parts[parts.size() - 3]);
    if (!port) return std::optional<Bdf>{};  // under a root port: "pciDDDD:BB" above it
    auto group = sys_->listDirectory(PciSysfs::devicePath(*port) + "/tsm");
    if (!group) {
        if (group.error() == ENOENT) return std::optional<Bdf>{};
        return std::unexpected(kernelError("list tsm/ of " + port->toString(), group.error()));
    }
    if (std::find(group->begin(), group->end(), "connect") == group->end()) return std::optional<Bdf>{};
    return std::optional<Bdf>{*port};
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
