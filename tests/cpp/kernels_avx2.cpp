#define RR_SIMD_VARIANT 2
#define RR_SIMD_NS test_avx2
#define KERNEL_SET_NAME kernels_avx2
#include "kernels_variant.inc"
