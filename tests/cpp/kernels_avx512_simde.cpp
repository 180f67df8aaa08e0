// The AVX-512 kernels on a CPU without AVX-512: the very code the core ships for AVX-512 CPUs,
// its intrinsics emulated by SIMDe on top of the AVX2, FMA and F16C instructions that this
// executable is compiled for (so fused multiply-adds stay fused).
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#include <simde/x86/f16c.h>

// (missing from SIMDe 0.7: the 16-lane half conversion, as two 8-lane ones)
static inline simde__m512 emulated_mm512_cvtph_ps(simde__m256i h) {
  simde__m512_private r;
  r.m256[0] = simde_mm256_cvtph_ps(simde_mm256_castsi256_si128(h));
  r.m256[1] = simde_mm256_cvtph_ps(simde_mm256_extracti128_si256(h, 1));
  return simde__m512_from_private(r);
}
#define _mm512_cvtph_ps(h) emulated_mm512_cvtph_ps(h)

#define RR_SIMD_VARIANT 3
#define RR_SIMD_EMULATED
#define RR_SIMD_NS test_avx512_emulated
#define KERNEL_SET_NAME kernels_avx512_simde
#include "kernels_variant.inc"
