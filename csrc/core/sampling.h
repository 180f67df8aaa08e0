// Pixel sampling and the occlusion test, written once for the CPU kernels and the CUDA kernels
// (host + device) so that both backends compute the same thing with the same arithmetic.
//
// Multiply-adds are written as explicit fmaf (one rounding): the compiler is not allowed to fuse
// anything itself (-ffp-contract=off), so every CPU path (baseline, AVX2, AVX-512) and the GPU
// round alike. The fused forms are those the compiler chose when it still could, so results
// stayed what they were.
#pragma once
#include <math.h>
#include <stddef.h>

#include "core/host_device.h"

namespace rerender {

RR_HD inline float clampf(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }
RR_HD inline int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// True where (x, y) lies inside the frame's sampling domain [0, w-1] x [0, h-1].
RR_HD inline bool inside_frame(float x, float y, int w, int h) {
  return x >= 0.0f && y >= 0.0f && x <= static_cast<float>(w - 1) && y <= static_cast<float>(h - 1);
}

// Bilinear footprint of (x, y) in an h x w frame, coordinates clamped to it (border clamp):
// four pixel indices and their weights.
struct Bilinear {
  size_t i00, i01, i10, i11;
  float w00, w01, w10, w11;
};

RR_HD inline Bilinear bilinear_footprint(float x, float y, int h, int w) {
  x = clampf(x, 0.0f, static_cast<float>(w - 1));
  y = clampf(y, 0.0f, static_cast<float>(h - 1));
  const int x0 = static_cast<int>(x), y0 = static_cast<int>(y);  // x, y >= 0: truncation = floor
  const int x1 = x0 + 1 < w ? x0 + 1 : w - 1, y1 = y0 + 1 < h ? y0 + 1 : h - 1;
  const float ax = x - x0, ay = y - y0;
  Bilinear f;
  f.i00 = static_cast<size_t>(y0) * w + x0;
  f.i01 = static_cast<size_t>(y0) * w + x1;
  f.i10 = static_cast<size_t>(y1) * w + x0;
  f.i11 = static_cast<size_t>(y1) * w + x1;
  f.w00 = (1 - ax) * (1 - ay);
  f.w01 = ax * (1 - ay);
  f.w10 = (1 - ax) * ay;
  f.w11 = ax * ay;
  return f;
}

// Channel ch of the channel-interleaved, c-channel image `img` at footprint f.
template <typename T>
RR_HD inline float bilinear_channel(const T* img, int c, const Bilinear& f, int ch) {
  const float v00 = static_cast<float>(img[f.i00 * c + ch]), v01 = static_cast<float>(img[f.i01 * c + ch]);
  const float v10 = static_cast<float>(img[f.i10 * c + ch]), v11 = static_cast<float>(img[f.i11 * c + ch]);
  return fmaf(f.w11, v11, fmaf(f.w10, v10, fmaf(f.w00, v00, f.w01 * v01)));
}

// All c channels of an h x w x c image sampled bilinearly at (x, y), written to `out`.
template <typename T>
RR_HD inline void bilinear_at(const T* img, int h, int w, int c, float x, float y, float* out) {
  const Bilinear f = bilinear_footprint(x, y, h, w);
  for (int ch = 0; ch < c; ++ch) out[ch] = bilinear_channel(img, c, f, ch);
}

// Nearest pixel to (x, y): round half up, then clamp, so masks keep exactly their values. The
// clamp happens in float, before the conversion: a position beyond the int range (a flow of 3e9)
// must land on the near border, not wrap to the opposite one.
RR_HD inline size_t nearest_index(float x, float y, int w, int h) {
  const int ix = static_cast<int>(clampf(floorf(x + 0.5f), 0.0f, static_cast<float>(w - 1)));
  const int iy = static_cast<int>(clampf(floorf(y + 0.5f), 0.0f, static_cast<float>(h - 1)));
  return static_cast<size_t>(iy) * w + ix;
}

// uint8 result of a float sample: round to nearest (half up), saturate.
RR_HD inline unsigned char round_u8(float v) {
  return static_cast<unsigned char>(clampf(v + 0.5f, 0.0f, 255.0f));
}

RR_HD inline float norm2(float x, float y) {
#if defined(__CUDA_ARCH__)
  return __fsqrt_rn(fmaf(x, x, y * y));  // IEEE sqrt even under --use_fast_math: same as the CPU
#else
  return sqrtf(fmaf(x, x, y * y));
#endif
}

// UnFlow's forward-backward test at one pixel: f = forward flow there, b = backward flow
// sampled at x + f. Occluded when |f + b| > alpha1 (|f| + |b|) + alpha2.
RR_HD inline bool inconsistent(const float* f, const float* b, float alpha1, float alpha2) {
  return norm2(f[0] + b[0], f[1] + b[1]) > fmaf(alpha1, norm2(f[0], f[1]) + norm2(b[0], b[1]), alpha2);
}

}  // namespace rerender
