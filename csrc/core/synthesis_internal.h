// Internals of the guided synthesis shared by its translation units (cpu, pyramid, patchmatch,
// vote), all compiled once per SIMD variant (see simd_variant.h): everything here lives in the
// variant's namespace, rerender::synthesis::RR_SIMD_NS::detail.
//
// Every pixel is stored as one feature vector: style channels then all guide channels, each
// pre-scaled by sqrt(weight / channels) (times one global factor, see Layout), zero-padded to a
// multiple of 16 values. A patch error is then a plain SSD over `patch` contiguous rows of
// patch * D values (SIMD friendly). Source features are stored as IEEE half floats: PatchMatch
// reads source patches at random places, so its speed is bound by memory traffic, and halving
// the footprint keeps far more of it in cache. Target features stay float32 but are rounded
// through half precision, so that equal inputs still give exactly zero error.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "core/simd_variant.h"  // (and the intrinsics)

#include "core/half.h"
#include "core/rng.h"
#include "core/synthesis.h"
#include "core/synthesis_schedule.h"

RR_SIMD_BEGIN
#include "core/synthesis_kernels.h"

namespace rerender::synthesis::RR_SIMD_NS::detail {

// Feature layout shared by all levels.
struct Layout {
  int cs = 0;               // style channels (first cs feature slots)
  int cg = 0;               // guide channels (the next cg slots)
  int d = 0;                // padded feature count per pixel
  int p = 5, r = 2;         // patch size and radius
  float style_scale = 1.f;  // sqrt(style_weight / cs) * feature_scale
  // All features are multiplied by this factor so that the largest is ~1000, well inside the
  // half-float range whatever the weights; errors are divided by its square on the way out.
  float feature_scale = 1.f;
};

// Inputs of one pyramid level (level 0 = finest).
struct LevelData {
  int hs = 0, ws = 0, ht = 0, wt = 0;
  std::vector<Feat> src;         // hs x ws x d: scaled style + guides
  std::vector<float> src_style;  // hs x ws x cs: raw style (what the vote averages)
  std::vector<Feat> tgt;         // ht x wt x d: scaled guides, style slots zero
  std::vector<uint8_t> mask;     // ht x wt: 1 = synthesise
};

// NNF entries pack a source centre (x, y) into one 32-bit word (compact, compared in one go).
inline uint32_t pack(int x, int y) { return (static_cast<uint32_t>(y) << 16) | static_cast<uint32_t>(x); }
inline int unpack_x(uint32_t v) { return static_cast<int>(v & 0xffffu); }
inline int unpack_y(uint32_t v) { return static_cast<int>(v >> 16); }

// Working state of the level being solved.
struct State {
  const LevelData* lv = nullptr;
  Layout lay;
  int hs = 0, ws = 0, ht = 0, wt = 0;
  int pw = 0;                    // padded target width (wt + 2r)
  std::vector<float> tgt;        // (ht + 2r) x pw x d: guides + current synthesis (scaled), edge-replicated
  // While searches compare guides only: the guide slots alone, packed (cg values a pixel, not
  // padded: a patch row of p * cg values instead of p * d, most of them zeros otherwise), each
  // followed by 15 readable values (see ssd()).
  std::vector<Feat> guide_src;   // hs x ws x cg
  std::vector<float> guide_tgt;  // (ht + 2r) x pw x cg
  // The features searches compare: src / tgt (c = d), or guide_src / guide_tgt (c = cg).
  const Feat* cmp_src = nullptr;
  const float* cmp_tgt = nullptr;
  int cmp_c = 0;
  std::vector<float> out;        // ht x wt x cs: current synthesis (raw)
  std::vector<uint32_t> nnf;     // ht x wt packed source centres
  std::vector<float> err;        // ht x wt plain patch error
  std::vector<int32_t> omega;    // hs x ws: how many target patches cover each source pixel
  bool omega_valid = false;      // omega matches the NNF (kept up to date by PatchMatch)
  std::vector<uint8_t> active;   // ht x wt: searched in the next PatchMatch
  std::vector<uint8_t> moved;    // ht x wt: NNF entry changed since the last vote
  bool warm_start = false;       // the call started from a given field (see patchmatch())
  double omega_best = 1.0;       // (|target| / |source|) * patch^2

  // (of the compared features)
  const Feat* src_patch(uint32_t q) const {  // top-left of the source patch centred at q
    return cmp_src + (static_cast<size_t>(unpack_y(q) - lay.r) * ws + (unpack_x(q) - lay.r)) * cmp_c;
  }
  const float* tgt_patch(int x, int y) const {  // top-left of the target patch centred at (x, y)
    return cmp_tgt + (static_cast<size_t>(y) * pw + x) * cmp_c;
  }
  size_t src_stride() const { return static_cast<size_t>(ws) * cmp_c; }
  size_t tgt_stride() const { return static_cast<size_t>(pw) * cmp_c; }
  int patch_len() const { return lay.p * cmp_c; }  // values of a patch row
  // valid source centres: the whole patch lies inside the source
  int qx_lo() const { return lay.r; }
  int qx_hi() const { return ws - 1 - lay.r; }
  int qy_lo() const { return lay.r; }
  int qy_hi() const { return hs - 1 - lay.r; }
};

// synthesis_pyramid.cpp
// Level 0 packs the inputs; coarser levels are 2x2 box averages (the mask: any pixel set).
std::vector<LevelData> build_pyramid(const Plane& style, const std::vector<Guide>& guides, int ht, int wt,
                                     const uint8_t* target_mask, const Layout& lay, int levels);
void init_state(State& st, const LevelData& lv, const Layout& lay);
// Searches compare the guides only (packing guide_src / guide_tgt), or all features again.
void compare_guides_only(State& st, bool on);
// Random NNF, or the full-resolution warm start init_nnf (init_w x init_h) read at every
// `scale`-th pixel and divided by it; its (-1, -1) entries stay random.
void random_nnf(State& st, uint64_t seed, const int32_t* init_nnf, int init_w, int init_h, int scale);
// Each coarse entry to its 2x2 block, doubled, plus the offset in the block.
void upsample_nnf(State& fine, const State& coarse);

// synthesis_patchmatch.cpp
float patch_error(const State& st, int x, int y, uint32_t q, float bound);
void compute_errors(State& st, int threads);  // plain E of every synthesised pixel
void compute_omega(State& st);
void patchmatch(State& st, const Params& prm, uint64_t seed, int threads);

// synthesis_vote.cpp
// Re-synthesise `out` (and the target's style slots) from the NNF where it moved; when
// track_changes, mark as active the pixels whose value changed by >= stop_threshold (max over
// channels).
void vote(State& st, float stop_threshold, bool track_changes, int threads);

}  // namespace rerender::synthesis::RR_SIMD_NS::detail
RR_SIMD_END
