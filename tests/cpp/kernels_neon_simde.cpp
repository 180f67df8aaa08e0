// The NEON kernels on x86: the very code the core ships for AArch64, its intrinsics emulated by
// SIMDe on top of the FMA instructions this executable is compiled for (vfmaq_f32 stays fused;
// without FMA SIMDe would multiply and add in two roundings).
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/arm/neon.h>

#define RR_SIMD_VARIANT 1
#define RR_SIMD_EMULATED
#define RR_SIMD_NS test_neon_emulated
#define KERNEL_SET_NAME kernels_neon_simde
#include "kernels_variant.inc"
