// Driver of the guided synthesis: coarse-to-fine over the pyramid, per level alternating
// PatchMatch and voting (see synthesis.h).
#include "core/synthesis.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "core/synthesis_internal.h"

namespace rerender::synthesis {

int auto_pyramid_levels(int hs, int ws, int ht, int wt, int patch_size) {
  const int short_side = std::min(std::min(hs, ws), std::min(ht, wt));
  int levels = 0;
  while (levels < 30 && (short_side >> levels) >= 2 * patch_size + 1) ++levels;
  return std::max(levels, 1);
}

Result synthesize(const Plane& style, const std::vector<Guide>& guides, int ht, int wt,
                  const int32_t* init_nnf, const uint8_t* target_mask, const Params& prm) {
  using namespace detail;
  Layout lay;
  lay.cs = style.c;
  int channels = style.c;
  for (const Guide& g : guides) channels += g.source.c;
  lay.d = (channels + 15) / 16 * 16;
  lay.p = prm.patch_size;
  lay.r = prm.patch_size / 2;
  lay.style_scale = std::sqrt(prm.style_weight / static_cast<float>(style.c));
  {
    auto max_abs = [](const Plane& pl) {
      float m = 0.f;
      const size_t n = static_cast<size_t>(pl.h) * pl.w * pl.c;
      for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(pl.at(i)));
      return m;
    };
    float largest = max_abs(style) * lay.style_scale;
    for (const Guide& g : guides) {
      const float s = std::sqrt(g.weight / static_cast<float>(g.source.c));
      largest = std::max({largest, max_abs(g.source) * s, max_abs(g.target) * s});
    }
    // (bounded so that squared errors and lambda stay finite in float)
    lay.feature_scale = largest > 0.f ? std::clamp(1000.f / largest, 1e-12f, 1e12f) : 1.f;
    lay.style_scale *= lay.feature_scale;
  }

  // A warm start replaces the coarse-to-fine search unless levels are asked for explicitly.
  const int levels = prm.pyramid_levels > 0 ? prm.pyramid_levels
                     : init_nnf            ? 1
                                           : auto_pyramid_levels(style.h, style.w, ht, wt, prm.patch_size);
  std::vector<LevelData> pyr = build_pyramid(style, guides, ht, wt, target_mask, lay, levels);

  State prev, st;
  for (int l = levels - 1; l >= 0; --l) {
    init_state(st, pyr[l], lay);
    std::vector<Feat>().swap(pyr[l].tgt);  // now copied into the state's padded target
    if (l == levels - 1)
      random_nnf(st, prm.seed, init_nnf, wt, ht, 1 << l);
    else
      upsample_nnf(st, prev);
    // Each level's first kGuideOnlySearches searches compare guides only (style slots zeroed on
    // both sides): the target style voted from a random or upsampled NNF would otherwise hold the
    // matches where they are (the style term is self-reinforcing), locking in the +-1 px errors
    // of upsampling or the average colour of a random start. The style term joins afterwards.
    // A warm start is no exception: its NNF (a previous frame's, moved along the flow) is as
    // approximate as an upsampled one. (Measured against the exact warp at 256/512/1024: two
    // guide-only searches instead of one, +0.1 to +0.3 dB; more change nothing. Warm starts
    // with guide-only searches instead of trusting the vote: +0.1 to +1.6 dB.)
    const bool random_start = l == levels - 1 && !init_nnf;
    std::vector<Feat> saved_style;  // the source's style slots while they are zeroed
    if (!random_start) vote(st, prm.stop_threshold, false, prm.threads);
    {
      std::vector<Feat>& src = pyr[l].src;
      saved_style.resize(src.size() / lay.d * lay.cs);
      for (size_t i = 0, j = 0; i < src.size(); i += lay.d, j += lay.cs) {
        std::copy_n(&src[i], lay.cs, &saved_style[j]);
        std::fill_n(&src[i], lay.cs, to_feat(0.f));
      }
      clear_target_style(st);
    }
    for (int s = 0; s < prm.search_vote_iters; ++s) {
      const uint64_t pass_seed = Rng::mix(prm.seed ^ (static_cast<uint64_t>(l) << 40) ^ static_cast<uint64_t>(s));
      patchmatch(st, prm, pass_seed, prm.threads);
      const bool guide_only = s < kGuideOnlySearches;
      if (guide_only && s + 1 == std::min(kGuideOnlySearches, prm.search_vote_iters)) {
        std::vector<Feat>& src = pyr[l].src;
        for (size_t i = 0, j = 0; i < src.size(); i += lay.d, j += lay.cs) std::copy_n(&saved_style[j], lay.cs, &src[i]);
        std::vector<Feat>().swap(saved_style);
        std::fill(st.moved.begin(), st.moved.end(), 1);  // the vote restores every target style slot
      }
      // After a random start every pixel is new; otherwise the stop threshold applies (after the
      // guide-only search: against the vote of the upsampled NNF).
      vote(st, prm.stop_threshold, !(s == 0 && random_start), prm.threads);
      if (s == 0 && random_start) st.active.assign(pyr[l].mask.begin(), pyr[l].mask.end());
      // the vote wrote them; not once the style term is back (with fewer iterations than guide-only
      // searches, the last vote's style must stay for the final error map)
      if (guide_only && s + 1 < std::min(kGuideOnlySearches, prm.search_vote_iters)) clear_target_style(st);
      // nothing left to search (all changes below the stop threshold): the remaining iterations
      // would change nothing
      if (s + 1 >= kGuideOnlySearches && std::none_of(st.active.begin(), st.active.end(), [](uint8_t a) { return a; }))
        break;
    }
    std::swap(prev, st);
    if (l > 0) {  // only the level above reads this one's state (its NNF), not its inputs
      std::vector<float>().swap(pyr[l].src_style);
      std::vector<Feat>().swap(pyr[l].src);
    }
  }

  State& fin = prev;
  compute_errors(fin, prm.threads);
  Result res;
  const size_t n = static_cast<size_t>(ht) * wt;
  res.image = std::move(fin.out);
  res.nnf.resize(n * 2);
  res.error = std::move(fin.err);
  const std::vector<uint8_t>& mask = pyr[0].mask;
  const float to_data_units = static_cast<float>(1.0 / (static_cast<double>(lay.feature_scale) * lay.feature_scale));
  for (size_t i = 0; i < n; ++i) {
    if (mask[i]) {
      res.nnf[2 * i] = unpack_x(fin.nnf[i]);
      res.nnf[2 * i + 1] = unpack_y(fin.nnf[i]);
      res.error[i] *= to_data_units;
    } else {
      res.nnf[2 * i] = res.nnf[2 * i + 1] = -1;
      res.error[i] = 0.f;
      std::fill_n(&res.image[i * lay.cs], lay.cs, 0.f);
    }
  }
  return res;
}

}  // namespace rerender::synthesis
