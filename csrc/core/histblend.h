// Histogram-preserving blending (Heitz & Neyret, HPG 2018) and the min-error combination of two
// synthesis candidates (METHOD.md section 3, temporal-aware blending).
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/image.h"

namespace rerender {

// Blend weight of input a: one value per pixel, or one value for the whole image. In [0, 1].
struct BlendWeight {
  const float* per_pixel = nullptr;  // h * w values, or nullptr to use `scalar`
  float scalar = 0.5f;
  float at(size_t i) const { return per_pixel ? per_pixel[i] : scalar; }
};

// Standard normal CDF and its inverse (quantile, accurate to ~1e-15 in (0, 1)).
double normal_cdf(double x);
double normal_quantile(double p);

// The per-channel transform of uint8 data as two 256-entry tables, from its histogram:
//   to_gauss[v] = Phi^-1(mid-CDF of v) = T(v) (for values present; ties share the mid-rank),
//   upper[v]    = Phi^-1(P(X <= v)), so T^-1(G) = byte_inverse(upper, G) (histblend_math.h).
struct ByteCdf {
  double to_gauss[256];
  double upper[256];
};
ByteCdf byte_cdf(const uint64_t* histogram256);

// Per channel, map a and b to standard normal values through their empirical CDFs
// (G = Phi^-1((rank + 0.5) / N), tied values share their mid-rank), blend
//   G = (w_a G_a + w_b G_b) / sqrt(w_a^2 + w_b^2),   w_b = 1 - w_a,
// which keeps G standard normal, and map back:
//  - with a non-empty `reference`: through the reference's inverse CDF, so the result keeps the
//    reference's per-channel histogram (reference may differ in size, not in channels);
//  - otherwise through w_a T_a^-1(G) + w_b T_b^-1(G), so weight 1 / 0 returns a / b exactly.
// a, b and out share size and channels; uint8 results are rounded to nearest.
void histogram_blend(ImageView<const uint8_t> a, ImageView<const uint8_t> b, BlendWeight weight_a,
                     ImageView<const uint8_t> reference, ImageView<uint8_t> out, int threads);
void histogram_blend(ImageView<const float> a, ImageView<const float> b, BlendWeight weight_a,
                     ImageView<const float> reference, ImageView<float> out, int threads);

// Bytes of working memory histogram_blend() needs beyond its inputs and output (the float
// version sorts every channel), so that callers can refuse a call the machine cannot hold.
// (ref_h, ref_w: the reference's size, 0 without one.)
uint64_t histogram_blend_working_bytes(int h, int w, int c, int ref_h, int ref_w, bool is_float, int threads);

// out(p) = a(p) where error_a(p) <= error_b(p), else b(p); take_a(p) = 1 where a was taken.
void min_error_combine(ImageView<const uint8_t> a, ImageView<const uint8_t> b, const float* error_a,
                       const float* error_b, ImageView<uint8_t> out, uint8_t* take_a, int threads);
void min_error_combine(ImageView<const float> a, ImageView<const float> b, const float* error_a,
                       const float* error_b, ImageView<float> out, uint8_t* take_a, int threads);

}  // namespace rerender
