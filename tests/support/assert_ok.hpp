#pragma once
// ASSERT_OK(expr) << "context": fails the test with the error's code and message when
// a Result holds an error. The switch/if-else shape keeps `<<` attachable and the
// macro safe inside an unbraced if.
#include <gtest/gtest.h>

#include "common/error.hpp"

#define ASSERT_OK(expr)                            \
    switch (0)                                     \
    case 0:                                        \
    default:                                       \
        if (const auto& tio_r_ = (expr); tio_r_) { \
        } else                                     \
            FAIL() << #expr << " -> " << ::tio::toString(tio_r_.error().code) << ": " << tio_r_.error().message << " "
