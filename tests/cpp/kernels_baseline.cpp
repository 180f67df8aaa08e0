#define RR_SIMD_VARIANT 0
#define RR_SIMD_NS test_baseline
#define KERNEL_SET_NAME kernels_baseline
#include "kernels_variant.inc"
