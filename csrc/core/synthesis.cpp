// The entry of the guided synthesis: runs the SIMD variant of the CPU backend (synthesis_cpu.cpp,
// compiled once per variant) that core/simd.h selects. All variants give the same bytes.
#include "core/synthesis.h"

#include <omp.h>

#include "core/simd.h"

namespace rerender::synthesis {

#define RR_VARIANT_ENTRY(ns)                                                                        \
  namespace ns {                                                                                    \
  Result synthesize(const Plane& style, const std::vector<Guide>& guides, int ht, int wt,          \
                    const int32_t* init_nnf, const uint8_t* target_mask, const Params& params,     \
                    const uint8_t* init_active);                                                    \
  }
RR_VARIANT_ENTRY(baseline)
#if defined(RERENDER_SIMD_X86)
RR_VARIANT_ENTRY(avx2)
RR_VARIANT_ENTRY(avx512)
#endif
#if defined(RERENDER_SIMD_NEON)
RR_VARIANT_ENTRY(neon)
#endif
#undef RR_VARIANT_ENTRY

uint64_t working_bytes(int hs, int ws, int ht, int wt, int cs, int feature_channels, int patch, int threads) {
  const uint64_t ns = static_cast<uint64_t>(hs) * ws, nt = static_cast<uint64_t>(ht) * wt;
  const uint64_t d = (static_cast<uint64_t>(feature_channels) + 15) / 16 * 16, r = patch / 2;
  const uint64_t team = threads > 0 ? threads : omp_get_max_threads();
  // pyramid: half-float features, raw style, mask; the coarser levels add a third at most
  const uint64_t pyramid = (ns * (2 * d + 4 * cs) + nt * (2 * d + 1)) * 4 / 3;
  // the level being solved and the previous (coarser) one: padded float target, synthesis, NNF,
  // errors, occupancy, flags; PatchMatch's stamps, per-thread occupancy deltas and change lists,
  // the occupancy's patch sums; the packed guide features of the guide-only searches
  const uint64_t padded = (static_cast<uint64_t>(ht) + 2 * r) * (static_cast<uint64_t>(wt) + 2 * r);
  const uint64_t level = padded * d * 4 + nt * (4 * cs + 4 + 4 + 2) + ns * 4;
  const uint64_t guides_only = (ns * 2 + padded * 4) * static_cast<uint64_t>(feature_channels);
  const uint64_t search = nt * (4 + 8 + 3) + ns * 4 * team + ns * 8 + guides_only;
  const uint64_t result = nt * (4 * cs + 8 + 4);
  return pyramid + level * 5 / 4 + search + result;
}

Result synthesize(const Plane& style, const std::vector<Guide>& guides, int ht, int wt, const int32_t* init_nnf,
                  const uint8_t* target_mask, const Params& params, const uint8_t* init_active) {
  switch (simd::active()) {
#if defined(RERENDER_SIMD_X86)
    case simd::Path::Avx512: return avx512::synthesize(style, guides, ht, wt, init_nnf, target_mask, params, init_active);
    case simd::Path::Avx2: return avx2::synthesize(style, guides, ht, wt, init_nnf, target_mask, params, init_active);
#endif
#if defined(RERENDER_SIMD_NEON)
    case simd::Path::Neon: return neon::synthesize(style, guides, ht, wt, init_nnf, target_mask, params, init_active);
#endif
    default: return baseline::synthesize(style, guides, ht, wt, init_nnf, target_mask, params, init_active);
  }
}

}  // namespace rerender::synthesis
