// The CPU backend of the guided synthesis: its steps of the shared schedule
// (synthesis_schedule.h) over the feature pyramid, and the whole call. Compiled once per SIMD
// variant; synthesis.cpp picks the variant.
#include <algorithm>
#include <cmath>
#include <utility>

#include "core/synthesis_internal.h"

RR_SIMD_BEGIN

namespace rerender::synthesis::RR_SIMD_NS {
namespace {

using namespace detail;

// The schedule's steps on the CPU (see synthesis_schedule.h for what each does). Guide-only
// searches compare a packed copy of the guide slots (State::guide_src / guide_tgt): the style
// slots would only add zeros, and leaving them out shortens a patch row (12 channels: 45 values
// instead of 80). The target's style slots stay up to date throughout, for when the style returns.
class CpuSteps {
 public:
  CpuSteps(std::vector<LevelData>& pyr, const Layout& lay, const Params& prm, const int32_t* init_nnf,
           const uint8_t* init_active, int ht, int wt)
      : pyr_(pyr), lay_(lay), prm_(prm), init_nnf_(init_nnf), init_active_(init_active), ht_(ht), wt_(wt) {}

  void begin_level(int level) {
    init_state(st_, pyr_[level], lay_);
    st_.warm_start = init_nnf_ != nullptr;
    std::vector<Feat>().swap(pyr_[level].tgt);  // now copied into the state's padded target
  }
  void init_coarsest(int level) {
    random_nnf(st_, prm_.seed, init_nnf_, wt_, ht_, 1 << level);
    // The caller's initial active set applies where the warm start is read at full resolution.
    if (init_nnf_ && init_active_ && level == 0) {
      const size_t n = static_cast<size_t>(ht_) * wt_;
      for (size_t i = 0; i < n; ++i)
        if (!init_active_[i] && !(init_nnf_[2 * i] == -1 && init_nnf_[2 * i + 1] == -1)) st_.active[i] = 0;
    }
  }
  void upsample() { upsample_nnf(st_, prev_); }
  void style_term(bool on) { compare_guides_only(st_, !on); }
  void search(uint64_t seed) { patchmatch(st_, prm_, seed, prm_.threads); }
  void vote(bool track) { detail::vote(st_, prm_.stop_threshold, track, prm_.threads); }
  void activate_all() { st_.active.assign(st_.lv->mask.begin(), st_.lv->mask.end()); }
  bool any_active() const { return std::any_of(st_.active.begin(), st_.active.end(), [](uint8_t a) { return a; }); }
  void end_level(int level) {
    std::swap(prev_, st_);
    if (level > 0) {  // only the level above reads this one's state (its NNF), not its inputs
      std::vector<float>().swap(pyr_[level].src_style);
      std::vector<Feat>().swap(pyr_[level].src);
    }
  }
  // After the schedule: the finest level's state.
  State& finest() { return prev_; }

 private:
  std::vector<LevelData>& pyr_;
  const Layout& lay_;
  const Params& prm_;
  const int32_t* init_nnf_;
  const uint8_t* init_active_;
  int ht_, wt_;
  State prev_, st_;
};

}  // namespace

Result synthesize(const Plane& style, const std::vector<Guide>& guides, int ht, int wt,
                  const int32_t* init_nnf, const uint8_t* target_mask, const Params& prm,
                  const uint8_t* init_active) {
  Layout lay;
  lay.cs = style.c;
  for (const Guide& g : guides) lay.cg += g.source.c;
  lay.d = (lay.cs + lay.cg + 15) / 16 * 16;
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

  const int levels = resolved_levels(prm, init_nnf != nullptr, style.h, style.w, ht, wt);
  std::vector<LevelData> pyr = build_pyramid(style, guides, ht, wt, target_mask, lay, levels);
  CpuSteps steps(pyr, lay, prm, init_nnf, init_active, ht, wt);
  run_schedule(steps, levels, init_nnf != nullptr, prm.search_vote_iters, prm.seed);

  State& fin = steps.finest();
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

}  // namespace rerender::synthesis::RR_SIMD_NS
RR_SIMD_END
