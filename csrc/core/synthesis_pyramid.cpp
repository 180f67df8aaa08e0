// Feature packing, the image pyramid and NNF initialisation / upsampling between levels.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "core/synthesis_internal.h"

RR_SIMD_BEGIN

namespace rerender::synthesis::RR_SIMD_NS::detail {
namespace {

// 2x2 box average (repeated halving keeps levels aligned with the NNF's 2x2 upsampling),
// computed in float whatever the storage type.
template <typename T>
std::vector<T> halve(const std::vector<T>& in, int h, int w, int c, int h2, int w2) {
  std::vector<T> out(static_cast<size_t>(h2) * w2 * c);
  auto get = [](T v) -> float {
    if constexpr (std::is_same_v<T, float>) return v; else return from_feat(v);
  };
  for (int y = 0; y < h2; ++y) {
    const int y0 = std::min(2 * y, h - 1), y1 = std::min(2 * y + 1, h - 1);
    for (int x = 0; x < w2; ++x) {
      const int x0 = std::min(2 * x, w - 1), x1 = std::min(2 * x + 1, w - 1);
      const T* a = &in[(static_cast<size_t>(y0) * w + x0) * c];
      const T* b = &in[(static_cast<size_t>(y0) * w + x1) * c];
      const T* e = &in[(static_cast<size_t>(y1) * w + x0) * c];
      const T* f = &in[(static_cast<size_t>(y1) * w + x1) * c];
      T* o = &out[(static_cast<size_t>(y) * w2 + x) * c];
      for (int k = 0; k < c; ++k) {
        const float v = 0.25f * (get(a[k]) + get(b[k]) + get(e[k]) + get(f[k]));
        if constexpr (std::is_same_v<T, float>) o[k] = v; else o[k] = to_feat(v);
      }
    }
  }
  return out;
}

std::vector<uint8_t> halve_mask(const std::vector<uint8_t>& in, int h, int w, int h2, int w2) {
  // a coarse pixel is synthesised when any of its fine pixels is
  std::vector<uint8_t> out(static_cast<size_t>(h2) * w2);
  for (int y = 0; y < h2; ++y)
    for (int x = 0; x < w2; ++x) {
      uint8_t m = 0;
      for (int dy = 0; dy < 2; ++dy)
        for (int dx = 0; dx < 2; ++dx)
          m |= in[static_cast<size_t>(std::min(2 * y + dy, h - 1)) * w + std::min(2 * x + dx, w - 1)];
      out[static_cast<size_t>(y) * w2 + x] = m;
    }
  return out;
}

// Pack planes into scaled feature vectors: slot `offset + k` of pixel i = plane[i, k] * scale.
void pack_into(std::vector<Feat>& feat, int d, int offset, const Plane& pl, float scale) {
  const size_t n = static_cast<size_t>(pl.h) * pl.w;
  for (size_t i = 0; i < n; ++i)
    for (int k = 0; k < pl.c; ++k) feat[i * d + offset + k] = to_feat(pl.at(i * pl.c + k) * scale);
}

}  // namespace

std::vector<LevelData> build_pyramid(const Plane& style, const std::vector<Guide>& guides, int ht, int wt,
                                     const uint8_t* target_mask, const Layout& lay, int levels) {
  std::vector<LevelData> pyr(levels);
  LevelData& f = pyr[0];
  f.hs = style.h, f.ws = style.w, f.ht = ht, f.wt = wt;
  const size_t ns = static_cast<size_t>(f.hs) * f.ws, nt = static_cast<size_t>(ht) * wt;
  f.src.assign(ns * lay.d, to_feat(0.f));
  f.tgt.assign(nt * lay.d, to_feat(0.f));
  f.src_style.resize(ns * lay.cs);
  for (size_t i = 0; i < ns * lay.cs; ++i) f.src_style[i] = style.at(i);
  pack_into(f.src, lay.d, 0, style, lay.style_scale);
  int off = lay.cs;
  for (const Guide& g : guides) {
    const float s = std::sqrt(g.weight / static_cast<float>(g.source.c)) * lay.feature_scale;
    pack_into(f.src, lay.d, off, g.source, s);
    pack_into(f.tgt, lay.d, off, g.target, s);
    off += g.source.c;
  }
  f.mask.assign(nt, 1);
  if (target_mask)
    for (size_t i = 0; i < nt; ++i) f.mask[i] = target_mask[i] ? 1 : 0;

  for (int l = 1; l < levels; ++l) {
    const LevelData& a = pyr[l - 1];
    LevelData& b = pyr[l];
    b.hs = level_size(f.hs, l), b.ws = level_size(f.ws, l);
    b.ht = level_size(ht, l), b.wt = level_size(wt, l);
    b.src = halve(a.src, a.hs, a.ws, lay.d, b.hs, b.ws);
    b.tgt = halve(a.tgt, a.ht, a.wt, lay.d, b.ht, b.wt);
    b.src_style = halve(a.src_style, a.hs, a.ws, lay.cs, b.hs, b.ws);
    b.mask = halve_mask(a.mask, a.ht, a.wt, b.ht, b.wt);
  }
  return pyr;
}

void init_state(State& st, const LevelData& lv, const Layout& lay) {
  st.lv = &lv;
  st.lay = lay;
  st.hs = lv.hs, st.ws = lv.ws, st.ht = lv.ht, st.wt = lv.wt;
  st.pw = lv.wt + 2 * lay.r;
  const int ph = lv.ht + 2 * lay.r;
  // Target features padded by the patch radius with the edge replicated, so that target patches
  // never need bounds checks.
  st.tgt.assign(static_cast<size_t>(ph) * st.pw * lay.d, 0.f);
  for (int y = 0; y < ph; ++y) {
    const int sy = std::clamp(y - lay.r, 0, lv.ht - 1);
    for (int x = 0; x < st.pw; ++x) {
      const int sx = std::clamp(x - lay.r, 0, lv.wt - 1);
      const Feat* from = &lv.tgt[(static_cast<size_t>(sy) * lv.wt + sx) * lay.d];
      float* to = &st.tgt[(static_cast<size_t>(y) * st.pw + x) * lay.d];
      for (int k = 0; k < lay.d; ++k) to[k] = from_feat(from[k]);
    }
  }
  compare_guides_only(st, false);
  const size_t nt = static_cast<size_t>(lv.ht) * lv.wt;
  st.out.assign(nt * lay.cs, 0.f);
  st.nnf.assign(nt, 0);
  st.err.assign(nt, 0.f);
  st.omega.assign(static_cast<size_t>(lv.hs) * lv.ws, 0);
  st.omega_valid = false;
  st.active.assign(lv.mask.begin(), lv.mask.end());
  st.moved.assign(nt, 1);
  size_t count = 0;
  for (uint8_t m : lv.mask) count += m;
  st.omega_best = (static_cast<double>(count) / (static_cast<double>(lv.hs) * lv.ws)) * lay.p * lay.p;
}

void compare_guides_only(State& st, bool on) {
  const Layout& lay = st.lay;
  if (!on) {
    std::vector<Feat>().swap(st.guide_src);
    std::vector<float>().swap(st.guide_tgt);
    st.cmp_src = st.lv->src.data(), st.cmp_tgt = st.tgt.data(), st.cmp_c = lay.d;
    return;
  }
  // (the guide slots stay as they are while the style term is off: only votes write the target)
  const size_t ns = static_cast<size_t>(st.hs) * st.ws, np = st.tgt.size() / lay.d;
  st.guide_src.assign(ns * lay.cg + 15, to_feat(0.f));
  st.guide_tgt.assign(np * lay.cg + 15, 0.f);
  const Feat* src = st.lv->src.data();
  for (size_t i = 0; i < ns; ++i) std::copy_n(src + i * lay.d + lay.cs, lay.cg, &st.guide_src[i * lay.cg]);
  for (size_t i = 0; i < np; ++i) std::copy_n(&st.tgt[i * lay.d + lay.cs], lay.cg, &st.guide_tgt[i * lay.cg]);
  st.cmp_src = st.guide_src.data(), st.cmp_tgt = st.guide_tgt.data(), st.cmp_c = lay.cg;
}

void random_nnf(State& st, uint64_t seed, const int32_t* init_nnf, int init_w, int init_h, int scale) {
  for (int y = 0; y < st.ht; ++y) {
    Rng rng(seed, kInitStream, static_cast<uint64_t>(st.ht), static_cast<uint64_t>(y));
    for (int x = 0; x < st.wt; ++x) {
      int qx = -1, qy = -1;
      if (init_nnf) {
        // warm start: the full-resolution guess at this pixel's top-left fine pixel, scaled down
        const int fx = std::min(x * scale, init_w - 1), fy = std::min(y * scale, init_h - 1);
        const int32_t* e = init_nnf + (static_cast<size_t>(fy) * init_w + fx) * 2;
        if (e[0] >= 0 && e[1] >= 0) qx = e[0] / scale, qy = e[1] / scale;
      }
      if (qx < 0) {
        qx = rng.range(st.qx_lo(), st.qx_hi());
        qy = rng.range(st.qy_lo(), st.qy_hi());
      }
      st.nnf[static_cast<size_t>(y) * st.wt + x] =
          pack(std::clamp(qx, st.qx_lo(), st.qx_hi()), std::clamp(qy, st.qy_lo(), st.qy_hi()));
    }
  }
}

void upsample_nnf(State& fine, const State& coarse) {
  // each coarse entry covers its 2x2 block, coordinates doubled plus the offset in the block
  for (int y = 0; y < fine.ht; ++y) {
    const int cy = std::min(y / 2, coarse.ht - 1);
    for (int x = 0; x < fine.wt; ++x) {
      const int cx = std::min(x / 2, coarse.wt - 1);
      const uint32_t c = coarse.nnf[static_cast<size_t>(cy) * coarse.wt + cx];
      const int qx = std::clamp(2 * unpack_x(c) + (x - 2 * cx), fine.qx_lo(), fine.qx_hi());
      const int qy = std::clamp(2 * unpack_y(c) + (y - 2 * cy), fine.qy_lo(), fine.qy_hi());
      fine.nnf[static_cast<size_t>(y) * fine.wt + x] = pack(qx, qy);
    }
  }
}

}  // namespace rerender::synthesis::RR_SIMD_NS::detail
RR_SIMD_END
