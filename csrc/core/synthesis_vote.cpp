// Voting: every target pixel becomes the mean of the source pixels that the patches covering it
// map it to; then the stop-threshold mask of pixels worth searching again. Only pixels near an
// NNF entry that moved since the last vote are recomputed (the others cannot change).
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "core/synthesis_internal.h"

RR_SIMD_BEGIN

namespace rerender::synthesis::RR_SIMD_NS::detail {
namespace {

// Vote row y (pixels flagged in `redo`): mean of the source pixels the covering patches map
// each pixel to; flags in `changed` the pixels whose value moved by >= stop_threshold.
// CS = channel count known at compile time, 0 = use st.lay.cs (then `scratch` holds cs floats).
template <int CS>
void vote_row(State& st, int y, const uint8_t* redo, uint8_t* changed, float stop_threshold, float* scratch) {
  const int r = st.lay.r, cs = CS > 0 ? CS : st.lay.cs, d = st.lay.d, ht = st.ht, wt = st.wt, ws = st.ws;
  const float* src_style = st.lv->src_style.data();
  const uint8_t* mask = st.lv->mask.data();
  const float scale = st.lay.style_scale;
  float fixed_acc[CS > 0 ? CS : 1];
  float* acc = CS > 0 ? fixed_acc : scratch;
  for (int x = 0; x < wt; ++x) {
    if (!redo[static_cast<size_t>(y) * wt + x]) continue;
    std::fill_n(acc, cs, 0.f);
    int n = 0;
    for (int dy = -r; dy <= r; ++dy) {
      const int ty = y - dy;  // centre of a target patch that covers (x, y)
      if (ty < 0 || ty >= ht) continue;
      for (int dx = -r; dx <= r; ++dx) {
        const int tx = x - dx;
        if (tx < 0 || tx >= wt) continue;
        const size_t ti = static_cast<size_t>(ty) * wt + tx;
        if (!mask[ti]) continue;
        const uint32_t q = st.nnf[ti];
        const float* s = src_style + (static_cast<size_t>(unpack_y(q) + dy) * ws + unpack_x(q) + dx) * cs;
        for (int k = 0; k < cs; ++k) acc[k] += s[k];
        ++n;
      }
    }
    if (n == 0) continue;  // not covered by any synthesised patch
    const float inv = 1.f / static_cast<float>(n);
    float* o = &st.out[(static_cast<size_t>(y) * wt + x) * cs];
    float* t = &st.tgt[(static_cast<size_t>(y + r) * st.pw + x + r) * d];
    float change = 0.f;
    for (int k = 0; k < cs; ++k) {
      const float v = acc[k] * inv;
      change = std::max(change, std::fabs(v - o[k]));
      o[k] = v;
      t[k] = round_feat(v * scale);
    }
    changed[static_cast<size_t>(y) * wt + x] = change >= stop_threshold;
  }
}

}  // namespace

void vote(State& st, float stop_threshold, bool track_changes, int threads) {
  const int r = st.lay.r, cs = st.lay.cs, d = st.lay.d, ht = st.ht, wt = st.wt;
  const uint8_t* mask = st.lv->mask.data();
  const size_t n_px = static_cast<size_t>(ht) * wt;
  // small levels are not worth the barriers (each can cost a time slice on a busy machine)
  const int nt = n_px >= 65536 ? (threads > 0 ? threads : omp_get_max_threads()) : 1;
  std::vector<uint8_t> near_moved(n_px), redo(n_px), changed(n_px, 0);
  // every thread's accumulator for uncommon channel counts, allocated here: an exception must not
  // leave an OpenMP region
  std::vector<float> scratch(static_cast<size_t>(nt) * cs);

#pragma omp parallel num_threads(nt)
  {
    // Only pixels whose patch neighbourhood holds an NNF entry that moved can change:
    // redo = moved dilated by the patch radius (separable max filter).
#pragma omp for schedule(static)
    for (int y = 0; y < ht; ++y) {
      const uint8_t* a = &st.moved[static_cast<size_t>(y) * wt];
      uint8_t* b = &near_moved[static_cast<size_t>(y) * wt];
      for (int x = 0; x < wt; ++x) {
        uint8_t m = 0;
        for (int xx = std::max(0, x - r); xx <= std::min(wt - 1, x + r); ++xx) m |= a[xx];
        b[x] = m;
      }
    }
#pragma omp for schedule(static)
    for (int y = 0; y < ht; ++y) {
      uint8_t* b = &redo[static_cast<size_t>(y) * wt];
      for (int yy = std::max(0, y - r); yy <= std::min(ht - 1, y + r); ++yy) {
        const uint8_t* a = &near_moved[static_cast<size_t>(yy) * wt];
        for (int x = 0; x < wt; ++x) b[x] |= a[x];
      }
    }

#pragma omp for schedule(static)
    for (int y = 0; y < ht; ++y) {
      float* acc = scratch.data() + static_cast<size_t>(omp_get_thread_num()) * cs;
      switch (cs) {  // the common channel counts get a fixed-size accumulator
        case 1: vote_row<1>(st, y, redo.data(), changed.data(), stop_threshold, acc); break;
        case 3: vote_row<3>(st, y, redo.data(), changed.data(), stop_threshold, acc); break;
        case 4: vote_row<4>(st, y, redo.data(), changed.data(), stop_threshold, acc); break;
        default: vote_row<0>(st, y, redo.data(), changed.data(), stop_threshold, acc); break;
      }
    }

    // the padding ring of the target features repeats the edge pixels
#pragma omp for schedule(static)
    for (int py = 0; py < ht + 2 * r; ++py) {
      const int sy = std::clamp(py - r, 0, ht - 1);
      const bool edge_row = py < r || py >= ht + r;
      for (int px = 0; px < st.pw; ++px) {
        if (!edge_row && px >= r && px < wt + r) px = wt + r;  // skip the interior
        if (px >= st.pw) break;
        const int sx = std::clamp(px - r, 0, wt - 1);
        const float* from = &st.tgt[(static_cast<size_t>(sy + r) * st.pw + sx + r) * d];
        std::copy_n(from, cs, &st.tgt[(static_cast<size_t>(py) * st.pw + px) * d]);
      }
    }
  }
  std::fill(st.moved.begin(), st.moved.end(), 0);

  if (track_changes) {
    // Only pixels whose own value moved by >= stop_threshold are searched again (EbSynth's
    // rule). Also re-searching the pixels whose patch merely overlaps a changed pixel was
    // measured: ~30% slower and no better (lower PSNR against the exact warp, 0.4 dB at 512).
    for (size_t i = 0; i < n_px; ++i) st.active[i] = changed[i] & mask[i];
  }
}

}  // namespace rerender::synthesis::RR_SIMD_NS::detail
RR_SIMD_END
