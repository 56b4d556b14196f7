// The one errno -> Code map and the errno names messages use.
#include "kernel/kernel_error.hpp"

#include <gtest/gtest.h>

#include <cerrno>

namespace tio::kernel {
namespace {

TEST(KernelError, MapsErrnoOnceWithTheOperationInTheMessage) {
    EXPECT_EQ(kernelError("IOMMU_VIOMMU_ALLOC", EOPNOTSUPP).code, Code::NotSupported);
    EXPECT_EQ(kernelError("X", ENOTTY).code, Code::NotSupported);
    EXPECT_EQ(kernelError("X", EBUSY).code, Code::Busy);
    EXPECT_EQ(kernelError("X", EACCES).code, Code::AccessDenied);
    const Error e = kernelError("IOMMU_HWPT_ALLOC", ENOMEM);
    EXPECT_EQ(e.code, Code::Kernel);
    EXPECT_EQ(e.sys_errno, ENOMEM);
    EXPECT_EQ(e.message, "IOMMU_HWPT_ALLOC failed: ENOMEM");
}

TEST(ErrnoNames, RoundTrip) {
    for (int e : {ENOMEM, EBUSY, EINVAL, ENOENT, EOPNOTSUPP, EIO, EADDRINUSE}) {
        EXPECT_EQ(errnoFromName(errnoName(e)), e);
    }
    EXPECT_EQ(errnoFromName("ENOSUCH"), 0);
}

TEST(ErrnoNames, EveryErrnoTheKernelCallsAnswerHasItsName) {
    // Bad input once answered "errno 98" (EADDRINUSE, the MSI window) without a name.
    EXPECT_EQ(kernelError("IOMMU_IOAS_MAP", EADDRINUSE).message, "IOMMU_IOAS_MAP failed: EADDRINUSE");
    for (int e :
         {EPERM,  ENOENT, EIO,    ENXIO,  EBADF,      EAGAIN,    ENOMEM,    EFAULT,     EBUSY,  EEXIST,   ENODEV,
          EINVAL, ENOSPC, ENOTTY, ERANGE, EOPNOTSUPP, EOVERFLOW, ETIMEDOUT, EADDRINUSE, ENOSYS, ECANCELED}) {
        EXPECT_FALSE(errnoName(e).empty()) << e;
    }
    EXPECT_EQ(kernelError("X", 4095).message, "X failed: errno 4095") << "an unknown errno still says its number";
}

}  // namespace
}  // namespace tio::kernel
