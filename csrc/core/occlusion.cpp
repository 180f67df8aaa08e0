#include "core/occlusion.h"

#include <omp.h>

#include "core/sampling.h"

namespace rerender {

void occlusion(ImageView<const float> forward, ImageView<const float> backward, float alpha1,
               float alpha2, uint8_t* mask, int threads) {
  const int nt = threads > 0 ? threads : omp_get_max_threads();
  const int h = forward.h, w = forward.w;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const float* f = forward.pixel(y, x);
      const float sx = x + f[0], sy = y + f[1];
      uint8_t occluded = 1;
      if (inside_frame(sx, sy, backward.w, backward.h)) {
        float b[2];
        bilinear_at(backward.data, backward.h, backward.w, 2, sx, sy, b);
        occluded = inconsistent(f, b, alpha1, alpha2);
      }
      mask[static_cast<size_t>(y) * w + x] = occluded;
    }
  }
}

}  // namespace rerender
