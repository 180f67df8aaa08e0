// The schedule of the guided synthesis, written once for both backends: coarse-to-fine over the
// pyramid, per level alternating PatchMatch searches and votes, the guide-only first searches,
// the stop threshold, the early exit and the seeds of every pass. A backend supplies the steps
// (the CPU core: core/synthesis.cpp; CUDA: cuda/synthesis.cu) and owns its data; this file owns
// the order in which the steps run.
//
// Steps (a class with these members; `level` 0 is the finest):
//   void begin_level(int level);  // the level's working state from its pyramid inputs
//   void init_coarsest(int level);// NNF of the coarsest level: the warm start where it has a guess
//                                 //   (read at every 2^level-th pixel, divided by 2^level),
//                                 //   random elsewhere (Rng(seed, kInitStream, ...))
//   void upsample();              // NNF from the previous, coarser level (2x2 blocks, doubled)
//   void style_term(bool on);     // off: searches compare guides only (style slots left out)
//   void search(uint64_t seed);   // one PatchMatch call (propagation + random search) over the
//                                 //   active pixels, its random numbers drawn from `seed`
//   void vote(bool track);        // synthesise the output from the NNF; with `track`, the active
//                                 //   pixels become those whose value moved by >= the stop
//                                 //   threshold (max over channels; EbSynth's rule)
//   void activate_all();          // every synthesised (masked-in) pixel active
//   bool any_active();
//   void end_level(int level);    // this level's state becomes the previous one
//
// Plain C++ (no CUDA headers), so that nvcc compiles it as host code of cuda/synthesis.cu.
#pragma once
#include <algorithm>
#include <cstdint>

#include "core/rng.h"
#include "core/synthesis.h"

namespace rerender::synthesis {

// Levels a call solves: as asked; else one (the finest) for a warm start, which replaces the
// coarse-to-fine search; else as many as keep the smaller image's short side >= 2 * patch + 1.
inline int resolved_levels(const Params& prm, bool warm_start, int hs, int ws, int ht, int wt) {
  if (prm.pyramid_levels > 0) return prm.pyramid_levels;
  return warm_start ? 1 : auto_pyramid_levels(hs, ws, ht, wt, prm.patch_size);
}

// Seed of search `search` of level `level`: one stream per pass, the same on every backend.
inline uint64_t search_seed(uint64_t seed, int level, int search) {
  return Rng::mix(seed ^ (static_cast<uint64_t>(level) << 40) ^ static_cast<uint64_t>(search));
}

template <class Steps>
void run_schedule(Steps& steps, int levels, bool warm_start, int search_vote_iters, uint64_t seed) {
  for (int level = levels - 1; level >= 0; --level) {
    steps.begin_level(level);
    const bool coarsest = level == levels - 1;
    if (coarsest) steps.init_coarsest(level);
    else steps.upsample();
    // Each level's first kGuideOnlySearches searches compare guides only: the target style voted
    // from a random or upsampled NNF would otherwise hold the matches where they are (the style
    // term is self-reinforcing), locking in the +-1 px errors of upsampling or the average colour
    // of a random start. The style term joins afterwards. A warm start is no exception: its NNF
    // (a previous frame's, moved along the flow) is as approximate as an upsampled one.
    // (Measured against the exact warp at 256/512/1024: two guide-only searches instead of one,
    // +0.1 to +0.3 dB; more change nothing. Warm starts with guide-only searches instead of
    // trusting the vote: +0.1 to +1.6 dB.)
    const bool random_start = coarsest && !warm_start;
    // Unless the level starts from a random NNF, its NNF is voted first, so that the stop
    // threshold after the first search compares against that vote.
    if (!random_start) steps.vote(false);
    steps.style_term(false);
    const int guide_only = std::min(kGuideOnlySearches, search_vote_iters);
    for (int s = 0; s < search_vote_iters; ++s) {
      steps.search(search_seed(seed, level, s));
      if (s + 1 == guide_only) steps.style_term(true);  // the vote below brings the style back
      // After a random start every pixel is new: all stay active for the next search.
      const bool first_of_random = s == 0 && random_start;
      steps.vote(!first_of_random);
      if (first_of_random) steps.activate_all();
      // Nothing left to search (every change below the stop threshold): the remaining iterations
      // would change nothing.
      if (s + 1 >= kGuideOnlySearches && !steps.any_active()) break;
    }
    steps.end_level(level);
  }
}

}  // namespace rerender::synthesis
