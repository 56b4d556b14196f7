// The object table against what iommufd promises: a pin per hold, Busy on erasing
// what is held (naming what must go first), drain as "destroy what is unpinned until
// empty", leaves before what they hold.
#include "core/object_table.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace tio::core {
namespace {

constexpr ObjectKey kDev{ObjectKind::Device, 1};
constexpr ObjectKey kViommu{ObjectKind::VIommu, 2};
constexpr ObjectKey kVdev{ObjectKind::VDevice, 1};
constexpr ObjectKey kMem{ObjectKind::Memory, 3};

// The bring-up of one device: IOAS, page table, device, vIOMMU, vDEVICE, memory.
ObjectTable broughtUp() {
    ObjectTable t;
    EXPECT_TRUE(t.add(kIoasKey, 1));
    EXPECT_TRUE(t.add(kHwptKey, 2, {kIoasKey}));
    EXPECT_TRUE(t.add(kDev, 3, {kHwptKey}));
    EXPECT_TRUE(t.add(kViommu, 4, {kHwptKey}));
    EXPECT_TRUE(t.add(kVdev, 5, {kViommu, kDev}));
    EXPECT_TRUE(t.add(kMem, 0, {kIoasKey}));
    return t;
}

TEST(ObjectTable, APinPerHold) {
    const ObjectTable t = broughtUp();
    EXPECT_EQ(t.pins(kIoasKey), 2U) << "the page table and the memory";
    EXPECT_EQ(t.pins(kHwptKey), 2U) << "the device and the vIOMMU";
    EXPECT_EQ(t.pins(kDev), 1U);
    EXPECT_EQ(t.pins(kViommu), 1U);
    EXPECT_EQ(t.pins(kVdev), 0U);
    EXPECT_EQ(t.kernelIds(), (std::set<std::uint32_t>{1, 2, 3, 4, 5})) << "0 is no kernel object";
    EXPECT_EQ(t.ofKind(ObjectKind::Device), std::vector<ObjectKey>{kDev});
}

TEST(ObjectTable, ErasingWhatIsHeldIsBusyAndNamesTheHolder) {
    ObjectTable t = broughtUp();
    const auto generation = t.generation();
    auto r = t.erase(kViommu);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Code::Busy);
    EXPECT_NE(r.error().message.find("DestroyVDevice first"), std::string::npos) << r.error().message;
    auto dev = t.erase(kDev);
    ASSERT_FALSE(dev);
    EXPECT_NE(dev.error().message.find("DestroyVDevice first"), std::string::npos) << dev.error().message;
    EXPECT_EQ(t.generation(), generation) << "a refused erase changes nothing";
    EXPECT_EQ(t.pins(kViommu), 1U);

    ASSERT_TRUE(t.erase(kVdev));
    EXPECT_EQ(t.pins(kViommu), 0U) << "erasing the holder releases its pins";
    EXPECT_EQ(t.pins(kDev), 0U);
    ASSERT_TRUE(t.erase(kViommu));
    ASSERT_TRUE(t.erase(kDev));
    EXPECT_EQ(t.pins(kHwptKey), 0U);
    EXPECT_GT(t.generation(), generation);
    EXPECT_EQ(t.erase(kDev).error().code, Code::NotFound);
}

TEST(ObjectTable, AddRefusesDuplicatesAndDanglingHolds) {
    ObjectTable t = broughtUp();
    const auto before = t.pins(kHwptKey);
    EXPECT_EQ(t.add(kDev, 9, {kHwptKey}).error().code, Code::Internal);
    EXPECT_EQ(t.add({ObjectKind::Device, 7}, 9, {kHwptKey, {ObjectKind::VIommu, 99}}).error().code, Code::Internal);
    EXPECT_EQ(t.pins(kHwptKey), before) << "a refused add pins nothing";
    EXPECT_FALSE(t.contains({ObjectKind::Device, 7}));
}

TEST(ObjectTable, DrainDestroysLeavesFirstUntilEmpty) {
    ObjectTable t = broughtUp();
    std::vector<ObjectKey> order;
    auto errors = t.drain([&](ObjectKey key, std::uint32_t) -> Result<> {
        // Every object is unpinned when it goes: nothing is destroyed under a holder.
        EXPECT_EQ(t.pins(key), 0U) << toString(key.kind);
        order.push_back(key);
        return {};
    });
    EXPECT_TRUE(errors.empty());
    EXPECT_TRUE(t.empty());
    ASSERT_EQ(order.size(), 6U);
    auto at = [&](ObjectKey k) { return std::find(order.begin(), order.end(), k) - order.begin(); };
    EXPECT_LT(at(kVdev), at(kViommu));
    EXPECT_LT(at(kVdev), at(kDev));
    EXPECT_LT(at(kViommu), at(kHwptKey));
    EXPECT_LT(at(kDev), at(kHwptKey));
    EXPECT_LT(at(kHwptKey), at(kIoasKey));
    EXPECT_LT(at(kMem), at(kIoasKey));
}

TEST(ObjectTable, DrainStepsOverFailuresAndStillEmpties) {
    ObjectTable t = broughtUp();
    auto errors = t.drain([](ObjectKey key, std::uint32_t) -> Result<> {
        if (key.kind == ObjectKind::VIommu) return fail(Code::Kernel, "IOMMU_DESTROY failed: EIO");
        return {};
    });
    ASSERT_EQ(errors.size(), 1U);
    EXPECT_EQ(errors[0].message, "IOMMU_DESTROY failed: EIO");
    EXPECT_TRUE(t.empty()) << "teardown always makes progress";
}

}  // namespace
}  // namespace tio::core
