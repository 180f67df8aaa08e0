#include "core/warp.h"

#include <omp.h>

#include <algorithm>
#include <vector>

namespace rerender {
namespace {

inline void store(uint8_t* dst, const float* v, int c) {
  for (int ch = 0; ch < c; ++ch) dst[ch] = round_u8(v[ch]);
}
inline void store(float* dst, const float* v, int c) { std::copy_n(v, c, dst); }

template <typename T>
void warp_impl(ImageView<const T> src, ImageView<const float> flow, WarpMode mode, ImageView<T> out,
               uint8_t* valid, int threads) {
  const int nt = threads > 0 ? threads : omp_get_max_threads();
  // every thread's sample buffer, allocated here: an exception must not leave an OpenMP region
  std::vector<float> bufs(static_cast<size_t>(nt) * src.c);
#pragma omp parallel num_threads(nt)
  {
    float* buf = bufs.data() + static_cast<size_t>(omp_get_thread_num()) * src.c;
#pragma omp for schedule(static)
    for (int y = 0; y < out.h; ++y) {
      for (int x = 0; x < out.w; ++x) {
        const float* f = flow.pixel(y, x);
        const float sx = x + f[0], sy = y + f[1];
        if (valid) valid[static_cast<size_t>(y) * out.w + x] = inside_frame(sx, sy, src.w, src.h);
        T* dst = out.pixel(y, x);
        if (mode == WarpMode::Nearest) {
          std::copy_n(src.data + nearest_index(sx, sy, src.w, src.h) * src.c, src.c, dst);
        } else {
          bilinear_at(src.data, src.h, src.w, src.c, sx, sy, buf);
          store(dst, buf, src.c);
        }
      }
    }
  }
}

}  // namespace

void warp(ImageView<const uint8_t> src, ImageView<const float> flow, WarpMode mode,
          ImageView<uint8_t> out, uint8_t* valid, int threads) {
  warp_impl(src, flow, mode, out, valid, threads);
}
void warp(ImageView<const float> src, ImageView<const float> flow, WarpMode mode,
          ImageView<float> out, uint8_t* valid, int threads) {
  warp_impl(src, flow, mode, out, valid, threads);
}

}  // namespace rerender
