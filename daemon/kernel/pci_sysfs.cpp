#include "kernel/pci_sysfs.hpp"

#include <sys/sysmacros.h>

#include <cerrno>

#include "kernel/kernel_error.hpp"

namespace tio::kernel {
namespace {

// "major:minor\n" -> dev_t; nothing else parses (style B.4 item 70: never fall back
// to a permissive default on a garbage attribute).
std::optional<dev_t> parseDevNumber(const std::string& text) {
    unsigned major_n = 0;
    unsigned minor_n = 0;
    char tail = 0;
    const std::string t = PciSysfs::attributeValue(text);
    if (std::sscanf(t.c_str(), "%u:%u%c", &major_n, &minor_n, &tail) != 2) return std::nullopt;
    return makedev(major_n, minor_n);
}

Result<VfioCdev> cdevOf(const std::string& name, const std::string& dev_attribute) {
    const auto rdev = parseDevNumber(dev_attribute);
    if (!rdev) return fail(Code::Kernel, "unparsable vfio-dev/" + name + "/dev attribute");
    return VfioCdev{name, "/dev/vfio/devices/" + name, *rdev};
}

}  // namespace

std::string PciSysfs::devicePath(const Bdf& bdf) { return "/sys/bus/pci/devices/" + bdf.toString(); }

std::string PciSysfs::attributeValue(std::string raw) {
    while (!raw.empty() && (raw.back() == '\n' || raw.back() == ' ')) raw.pop_back();
    return raw;
}

Result<VfioCdev> PciSysfs::vfioCdev(const Bdf& bdf) {
    const std::string dev = devicePath(bdf);
    auto entries = sys_->listDirectory(dev + "/vfio-dev");
    if (!entries) {
        if (entries.error() == ENOENT) {
            auto exists = sys_->listDirectory(dev);
            if (!exists) return fail(Code::NotFound, "no PCI function " + bdf.toString());
            return fail(Code::NotSupported, bdf.toString() + " is not bound to vfio-pci (no vfio-dev)");
        }
        return std::unexpected(kernelError("list " + dev + "/vfio-dev", entries.error()));
    }
    for (const auto& name : *entries) {
        if (name.rfind("vfio", 0) != 0) continue;
        auto number = sys_->readAttribute(dev + "/vfio-dev/" + name + "/dev");
        if (!number) return std::unexpected(kernelError("read vfio-dev/" + name + "/dev", number.error()));
        return cdevOf(name, *number);
    }
    return fail(Code::NotSupported, bdf.toString() + " has no VFIO device cdev");
}

Result<VfioCdev> PciSysfs::vfioCdev(const Bdf& bdf, const std::string& name) {
    if (name.rfind("vfio", 0) == 0 && name.find('/') == std::string::npos) {
        if (auto number = sys_->readAttribute(devicePath(bdf) + "/vfio-dev/" + name + "/dev")) {
            return cdevOf(name, *number);
        }
    }
    return vfioCdev(bdf);
}

}  // namespace tio::kernel
