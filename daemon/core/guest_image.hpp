#pragma once
// A guest as a previous instance of the daemon left it: what its snapshot said,
// with the fds it kept already attached to the objects they belong to. The
// persister builds it (it knows the snapshot's encoding and the fd store's names);
// Guest::restore adopts it, asking the kernel about every fd before trusting it.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.hpp"
#include "core/lifecycle.hpp"
#include "core/memory_rules.hpp"
#include "core/objects.hpp"
#include "kernel/features.hpp"
#include "kernel/kvm.hpp"

namespace tio::core {

struct GuestImage {
    struct DeviceImage {
        ObjectId id = 0;
        std::string bdf;  // as stored: parsed strictly on adoption
        std::string vfio_name;
        bool attached = false;
        std::uint32_t dev_id = 0;
        std::optional<VDevice> vdevice;
        bool tdisp_capable = false;
        std::optional<TdiState> tdi;  // nullopt when the stored name was not a state
        bool tsm_connected = false;
        std::string dsm;  // as stored; empty in snapshots from before it was kept
        std::optional<kernel::VfToken> vf_token;
        UniqueFd vfio;   // empty when not kept
        UniqueFd claim;  // empty when not kept
    };
    struct MemoryImage {
        ObjectId id = 0;
        std::uint64_t gpa = 0;
        std::uint64_t size = 0;
        std::uint64_t offset = 0;
        std::vector<PageStates::Run> runs;  // the page states; empty means all shared
        UniqueFd gmem;                      // empty when not kept (regions on one file each get a duplicate)
        bool has_shared = false;            // the region had a shared backing (separate model)
        UniqueFd shared;                    // that memfd, empty when not kept
        std::uint64_t shared_offset = 0;
    };

    bool active = false;                    // a guest with a VM; nothing else is restored otherwise
    std::optional<kernel::VmType> vm_type;  // nullopt when the stored name is unknown
    std::uint32_t ioas_id = 0;
    std::uint32_t hwpt_id = 0;
    ObjectId next_object_id = 1;
    std::optional<kernel::IommuFeatures> iommu_features;             // what the previous instance probed, if it said
    std::optional<bool> gmem_map_file;                               // what the previous instance probed, if it did
    std::vector<std::pair<std::uint64_t, std::uint64_t>> uncertain;  // [start, end): Guest::uncertainWindows()
    std::uint64_t conversions = 0;
    std::uint64_t revocations = 0;
    UniqueFd vm;
    UniqueFd iommufd;
    std::vector<DeviceImage> devices;
    std::vector<VIommu> viommus;
    std::vector<MemoryImage> memory;
};

}  // namespace tio::core
