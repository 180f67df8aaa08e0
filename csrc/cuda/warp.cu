// Backward warp and forward-backward occlusion check on the GPU: one thread per pixel, the
// per-pixel arithmetic shared with the CPU (core/sampling.h).
#include "core/sampling.h"
#include "cuda/check.cuh"
#include "cuda/ops.h"

namespace rerender::cuda {
namespace {

__device__ inline void store(uint8_t* dst, float v) { *dst = round_u8(v); }
__device__ inline void store(float* dst, float v) { *dst = v; }

template <typename T>
__global__ void warp_kernel(const T* src, const float* flow, int h, int w, int c, bool nearest, T* out,
                            uint8_t* valid) {
  const size_t n = static_cast<size_t>(h) * w;
  for (size_t i = global_index(); i < n; i += grid_stride()) {
    const int x = static_cast<int>(i % w), y = static_cast<int>(i / w);
    const float sx = x + flow[2 * i], sy = y + flow[2 * i + 1];
    if (valid) valid[i] = inside_frame(sx, sy, w, h);
    T* dst = out + i * c;
    if (nearest) {
      const T* s = src + nearest_index(sx, sy, w, h) * c;
      for (int ch = 0; ch < c; ++ch) dst[ch] = s[ch];
    } else {
      const Bilinear f = bilinear_footprint(sx, sy, h, w);
      for (int ch = 0; ch < c; ++ch) store(dst + ch, bilinear_channel(src, c, f, ch));
    }
  }
}

__global__ void occlusion_kernel(const float* forward, const float* backward, int h, int w, float alpha1,
                                 float alpha2, uint8_t* mask) {
  const size_t n = static_cast<size_t>(h) * w;
  for (size_t i = global_index(); i < n; i += grid_stride()) {
    const int x = static_cast<int>(i % w), y = static_cast<int>(i / w);
    const float* f = forward + 2 * i;
    const float sx = x + f[0], sy = y + f[1];
    uint8_t occluded = 1;
    if (inside_frame(sx, sy, w, h)) {
      const Bilinear fp = bilinear_footprint(sx, sy, h, w);
      const float b[2] = {bilinear_channel(backward, 2, fp, 0), bilinear_channel(backward, 2, fp, 1)};
      occluded = inconsistent(f, b, alpha1, alpha2);
    }
    mask[i] = occluded;
  }
}

template <typename T>
void warp_impl(const T* src, const float* flow, int h, int w, int c, bool nearest, T* out, uint8_t* valid) {
  const size_t n = static_cast<size_t>(h) * w;
  RR_LAUNCH(warp_kernel<T>, n, src, flow, h, w, c, nearest, out, valid);
  synchronize();
}

}  // namespace

void warp(const uint8_t* src, const float* flow, int h, int w, int c, bool nearest, uint8_t* out,
          uint8_t* valid) {
  warp_impl(src, flow, h, w, c, nearest, out, valid);
}
void warp(const float* src, const float* flow, int h, int w, int c, bool nearest, float* out,
          uint8_t* valid) {
  warp_impl(src, flow, h, w, c, nearest, out, valid);
}

void occlusion(const float* forward, const float* backward, int h, int w, float alpha1, float alpha2,
               uint8_t* mask) {
  const size_t n = static_cast<size_t>(h) * w;
  RR_LAUNCH(occlusion_kernel, n, forward, backward, h, w, alpha1, alpha2, mask);
  synchronize();
}

}  // namespace rerender::cuda
