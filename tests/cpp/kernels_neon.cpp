#define RR_SIMD_VARIANT 1
#define RR_SIMD_NS test_neon
#define KERNEL_SET_NAME kernels_neon
#include "kernels_variant.inc"
