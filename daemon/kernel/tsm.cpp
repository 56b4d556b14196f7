#include "kernel/tsm.hpp"

#include "kernel/kernel_error.hpp"
#include "kernel/pci_sysfs.hpp"

namespace tio::kernel {
namespace {

std::string dsmAttribute(const Bdf& bdf, const char* name) { return PciSysfs::devicePath(bdf.dsm()) + "/tsm/" + name; }

}  // namespace

Result<std::string> Tsm::connectedTo(const Bdf& bdf) {
    auto r = sys_->readAttribute(dsmAttribute(bdf, "connect"));
    if (!r) return std::unexpected(kernelError("read tsm/connect", r.error()));
    return PciSysfs::attributeValue(*r);
}

Result<> Tsm::connect(const Bdf& bdf) {
    auto tsms = sys_->listDirectory("/sys/class/tsm");
    if (!tsms || tsms->empty()) return fail(Code::NotSupported, "no platform TSM (/sys/class/tsm is empty)");
    auto r = sys_->writeAttribute(dsmAttribute(bdf, "connect"), tsms->front());
    if (!r) return std::unexpected(kernelError("write tsm/connect", r.error()));
    return {};
}

Result<> Tsm::disconnect(const Bdf& bdf, const std::string& tsm) {
    auto r = sys_->writeAttribute(dsmAttribute(bdf, "disconnect"), tsm);
    if (!r) return std::unexpected(kernelError("write tsm/disconnect", r.error()));
    return {};
}

Result<std::string> Tsm::bound(const Bdf& bdf) {
    auto r = sys_->readAttribute(PciSysfs::devicePath(bdf) + "/tsm/bound");
    if (!r) return std::unexpected(kernelError("read tsm/bound", r.error()));
    return PciSysfs::attributeValue(*r);
}

}  // namespace tio::kernel
