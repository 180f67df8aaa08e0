// Guided patch-based synthesis (Jamriska et al. 2019, "Stylizing Video by Example"; EbSynth):
// for every target patch find the source patch minimising style + guide SSD (PatchMatch on an
// image pyramid, alternating search and voting, with a uniformity term), and vote the target.
//
// Plain C++17 + OpenMP. Inputs are assumed validated (see csrc/bindings/synthesis.cpp).
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace rerender::synthesis {

// Each pyramid level's first searches compare guides only; the style term joins afterwards (see
// run_schedule() in synthesis_schedule.h for why). Shared by the CPU and CUDA backends.
constexpr int kGuideOnlySearches = 2;

// One image as handed over by the caller: interleaved H x W x C, uint8 or float32.
struct Plane {
  const void* data = nullptr;
  int h = 0, w = 0, c = 0;
  bool is_float = false;
  float at(size_t i) const {
    return is_float ? static_cast<const float*>(data)[i] : static_cast<const uint8_t*>(data)[i];
  }
};

struct Guide {
  Plane source;  // on the style's grid
  Plane target;  // on the target grid, same channels as source
  float weight = 1.0f;  // split evenly over the guide's channels
};

// Float style and guide values must be finite and at most this in magnitude (the bindings check):
// beyond it, patch errors (squares summed over patches, times weights up to 1e12) and the
// half-float features could overflow. Images belong on a 0-255 scale; 1e9 leaves room for any
// real data.
constexpr float kMaxInputValue = 1e9f;

struct Params {
  float style_weight = 1.0f;
  int patch_size = 5;          // odd
  int pyramid_levels = 0;      // 0 = automatic (see auto_pyramid_levels)
  int search_vote_iters = 12;  // per level
  int patchmatch_iters = 6;    // per search-vote iteration
  float uniformity = 3500.0f;  // lambda of the occupancy term
  float stop_threshold = 5.0f; // skip pixels whose vote changed less than this (data units)
  int search_radius = 0;       // random search's first radius (pixels of the level searched); 0 = the exemplar's size
  uint64_t seed = 0;
  int threads = 0;  // 0 = OpenMP default
};

struct Result {
  std::vector<float> image;   // H_t x W_t x C_style
  std::vector<int32_t> nnf;   // H_t x W_t x 2, (x, y) source patch centres; (-1, -1) off the mask
  std::vector<float> error;   // H_t x W_t, plain patch error E (no uniformity term)
};

// First radius of the random search: the exemplar's larger side, or `search_radius` when smaller.
inline int first_search_radius(const Params& prm, int hs, int ws) {
  const int whole = std::max(hs, ws);
  return prm.search_radius > 0 ? std::min(whole, prm.search_radius) : whole;
}

// Number of levels that keeps the smaller image's short side >= 2 * patch + 1 (at least 1).
inline int auto_pyramid_levels(int hs, int ws, int ht, int wt, int patch_size) {
  const int short_side = std::min(std::min(hs, ws), std::min(ht, wt));
  int levels = 0;
  while (levels < 30 && (short_side >> levels) >= 2 * patch_size + 1) ++levels;
  return std::max(levels, 1);
}

// Size of pyramid level `level` (0 = finest) of an image of size n: repeated halving.
inline int level_size(int n, int level) {
  for (int i = 0; i < level; ++i) n = n / 2 > 0 ? n / 2 : 1;
  return n;
}

// Bytes of memory synthesize() uses at most for these sizes (its buffers over all levels and its
// result), so that callers can refuse a call the machine cannot hold before starting it.
// feature_channels: style channels + all guide channels. threads: as in Params (0 = default).
uint64_t working_bytes(int hs, int ws, int ht, int wt, int style_channels, int feature_channels, int patch_size,
                       int threads);

// init_nnf: optional H_t x W_t x 2 (x, y) warm start at full resolution; (-1, -1) entries mean
// "no guess" (random). target_mask: optional H_t x W_t, nonzero = synthesise.
// init_active: optional H_t x W_t, with init_nnf only: zero marks a pixel whose warm-start guess
// is already its answer (e.g. unchanged since the frame the field came from), left out of the
// searches until a vote changes its neighbourhood; it is still voted. Read only when the warm
// start is the finest level's start (one level, the default); pixels without a guess stay active.
Result synthesize(const Plane& style, const std::vector<Guide>& guides, int ht, int wt,
                  const int32_t* init_nnf, const uint8_t* target_mask, const Params& params,
                  const uint8_t* init_active = nullptr);

}  // namespace rerender::synthesis
