// The inner kernels of the synthesis that differ between SIMD variants (see simd_variant.h):
// feature conversion to and from half floats, the patch SSD and the occupancy sums.
//
// Every variant computes the same bits. The SSD is defined by the AVX2 code below: 16 lanes
// (lane l sums elements l, l + 16, l + 32, ... of each patch row), each lane a fused multiply-add
// d * d + acc per element, and one fixed order for the horizontal sum; the AVX-512 code does the
// very same with one 16-lane register, the NEON code with four 4-lane registers (its fused
// multiply-add rounds once, as AVX2's), the x86-64 baseline with an exact emulation of the fused
// multiply-add (no FMA instruction there). Occupancy sums are integers (any order is exact).
//
// Include inside RR_SIMD_BEGIN/RR_SIMD_END, after core/simd_variant.h (which brings the intrinsics).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "core/half.h"

namespace rerender::synthesis::RR_SIMD_NS::detail {

using Feat = uint16_t;  // source features: IEEE half-float bits

#if RR_SIMD_VARIANT >= RR_SIMD_AVX2
inline Feat to_feat(float v) { return _cvtss_sh(v, _MM_FROUND_TO_NEAREST_INT); }
inline float from_feat(Feat h) { return _cvtsh_ss(h); }
#elif RR_SIMD_VARIANT == RR_SIMD_NEON
// (FCVT rounds as the FPCR says: to nearest even, IEEE half, no flush to zero, as Linux and macOS
// start every thread.)
inline Feat to_feat(float v) { return vget_lane_u16(vreinterpret_u16_f16(vcvt_f16_f32(vdupq_n_f32(v))), 0); }
inline float from_feat(Feat h) { return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0); }
#else
inline Feat to_feat(float v) { return float_to_half(v); }
inline float from_feat(Feat h) { return half_to_float(h); }
#endif
inline float round_feat(float v) { return from_feat(to_feat(v)); }

// Most losing candidates are recognised after one or two rows; a horizontal sum costs as much
// as a row, so later rows are only summed up at the end.
inline bool ssd_checks_row(int j, int rows) { return j < 2 || j == rows - 1; }

// A patch row is `len` values; when len is not a multiple of 16, the last chunk of 16 counts as
// zero-padded (the SIMD versions read the whole chunk and zero the differences past len: the
// arrays they read need 15 readable values after a patch's last row).
//
// The SSD as plain C++: the definition the SIMD versions follow (std::fma is exact everywhere;
// it is the baseline on other architectures, and the reference of the tests).
inline float ssd_portable(const Feat* s, size_t s_stride, const float* t, size_t t_stride, int rows, int len,
                          float bound) {
  float lane[16] = {};
  for (int j = 0; j < rows; ++j, s += s_stride, t += t_stride) {
    for (int i = 0; i < len; i += 16)
      for (int l = 0; l < 16 && i + l < len; ++l) {  // (beyond len: zeros, which leave a lane as it is)
        const float d = half_to_float(s[i + l]) - t[i + l];
        lane[l] = std::fma(d, d, lane[l]);
      }
    if (ssd_checks_row(j, rows)) {
      float v[8], h[4];
      for (int k = 0; k < 8; ++k) v[k] = lane[k] + lane[k + 8];
      for (int k = 0; k < 4; ++k) h[k] = v[k] + v[k + 4];
      const float acc = (h[0] + h[2]) + (h[1] + h[3]);
      if (acc >= bound || j == rows - 1) return acc;
    }
  }
  return 0.f;  // rows == 0
}

#if RR_SIMD_VARIANT >= RR_SIMD_AVX2
// lanes [0, n) set (n <= 8): the part of a chunk of 8 inside a patch row (counts or features)
inline __m256i lanes(int n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
#endif

#if RR_SIMD_VARIANT >= RR_SIMD_AVX2
// The horizontal sum of 8 lanes (v = the 16 lanes folded once), in the defining order.
inline float ssd_horizontal(__m256 v) {
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}
#endif

#if RR_SIMD_VARIANT == RR_SIMD_BASELINE && defined(__SSE2__)
// Four half floats to float, bit-exact for every non-NaN value (NaNs keep their payload).
inline __m128 half4_to_float(const Feat* p) {
  const __m128i h = _mm_unpacklo_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)), _mm_setzero_si128());
  const __m128i sign = _mm_slli_epi32(_mm_and_si128(h, _mm_set1_epi32(0x8000)), 16);
  __m128i o = _mm_slli_epi32(_mm_and_si128(h, _mm_set1_epi32(0x7FFF)), 13);
  const __m128i exp = _mm_and_si128(o, _mm_set1_epi32(0x0F800000));
  o = _mm_add_epi32(o, _mm_set1_epi32(0x38000000));  // exponent bias 15 -> 127
  const __m128i inf_nan = _mm_cmpeq_epi32(exp, _mm_set1_epi32(0x0F800000));
  o = _mm_add_epi32(o, _mm_and_si128(inf_nan, _mm_set1_epi32(0x38000000)));
  // subnormals and zero: 2^-14 (1 + m / 1024) - 2^-14 = m 2^-24, exactly
  const __m128i sub = _mm_cmpeq_epi32(exp, _mm_setzero_si128());
  const __m128 renorm = _mm_sub_ps(_mm_castsi128_ps(_mm_add_epi32(o, _mm_set1_epi32(1 << 23))),
                                   _mm_castsi128_ps(_mm_set1_epi32(113 << 23)));
  const __m128 r = _mm_or_ps(_mm_and_ps(_mm_castsi128_ps(sub), renorm), _mm_andnot_ps(_mm_castsi128_ps(sub), _mm_castsi128_ps(o)));
  return _mm_or_ps(r, _mm_castsi128_ps(sign));
}

// Lanes of a double sum s = d * d + acc (d * d is exact in double) whose rounding to float may
// differ from one rounding of the exact value: only where s lies exactly halfway between two
// floats (its 29 dropped bits are 1000...0), or below the normal float range.
inline int double_rounding_risk(__m128d s) {
  const __m128i low = _mm_and_si128(_mm_castpd_si128(s), _mm_set1_epi64x(0x1FFFFFFF));
  const int halfway = _mm_movemask_epi8(_mm_cmpeq_epi32(low, _mm_set1_epi64x(0x10000000)));
  const __m128d tiny = _mm_and_pd(_mm_cmplt_pd(s, _mm_set1_pd(0x1p-126)), _mm_cmpneq_pd(s, _mm_setzero_pd()));
  return (halfway & 0x0101) | _mm_movemask_pd(tiny);
}

// acc + d * d with one rounding (acc >= 0), as the FMA instruction: in double, then rounded to
// float; the rare lanes at risk of a double rounding (e.g. a large d * d whose last bit is the
// float's halfway bit, plus a small acc) are redone with std::fma, which is exact everywhere.
inline __m128 fma_square(__m128 d, __m128 acc) {
  const __m128d dlo = _mm_cvtps_pd(d), dhi = _mm_cvtps_pd(_mm_movehl_ps(d, d));
  const __m128d slo = _mm_add_pd(_mm_mul_pd(dlo, dlo), _mm_cvtps_pd(acc));
  const __m128d shi = _mm_add_pd(_mm_mul_pd(dhi, dhi), _mm_cvtps_pd(_mm_movehl_ps(acc, acc)));
  __m128 r = _mm_movelh_ps(_mm_cvtpd_ps(slo), _mm_cvtpd_ps(shi));
  if (double_rounding_risk(slo) | double_rounding_risk(shi)) {
    alignas(16) float dv[4], av[4], rv[4];
    _mm_store_ps(dv, d);
    _mm_store_ps(av, acc);
    for (int l = 0; l < 4; ++l) rv[l] = std::fma(dv[l], dv[l], av[l]);
    r = _mm_load_ps(rv);
  }
  return r;
}
#endif

// SSD of a source patch (Feat) and a target patch (float) of `rows` rows of `len` contiguous
// values (len is a multiple of 16); may stop early once it reaches `bound` (the caller only
// needs to know that the candidate lost).
inline float ssd(const Feat* s, size_t s_stride, const float* t, size_t t_stride, int rows, int len, float bound) {
#if RR_SIMD_VARIANT == RR_SIMD_AVX512
  __m512 a = _mm512_setzero_ps();  // lanes 0-7 and 8-15: the AVX2 code's two accumulators
  const int full = len & ~15, rest = len - full;
  // 1 in lanes [0, rest), 0 beyond: d * keep is d or a zero (exactly)
  static constexpr float kOnesThenZeros[32] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  const __m512 keep = _mm512_loadu_ps(kOnesThenZeros + 16 - rest);
  for (int j = 0; j < rows; ++j, s += s_stride, t += t_stride) {
    for (int i = 0; i < full; i += 16) {
      const __m512 d = _mm512_sub_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i))),
                                     _mm512_loadu_ps(t + i));
      a = _mm512_fmadd_ps(d, d, a);
    }
    if (rest) {
      const __m512 d = _mm512_sub_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + full))),
                                     _mm512_loadu_ps(t + full));
      const __m512 dk = _mm512_mul_ps(d, keep);
      a = _mm512_fmadd_ps(dk, dk, a);
    }
    if (ssd_checks_row(j, rows)) {
      const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1));
      const float acc = ssd_horizontal(_mm256_add_ps(_mm512_castps512_ps256(a), hi));
      if (acc >= bound || j == rows - 1) return acc;
    }
  }
  return 0.f;
#elif RR_SIMD_VARIANT == RR_SIMD_AVX2
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  const int full = len & ~15, rest = len - full;
  const __m256 keep0 = _mm256_castsi256_ps(lanes(std::min(rest, 8))), keep1 = _mm256_castsi256_ps(lanes(rest - 8));
  for (int j = 0; j < rows; ++j, s += s_stride, t += t_stride) {
    for (int i = 0; i < full; i += 16) {
      const __m256 s0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i)));
      const __m256 s1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i + 8)));
      const __m256 d0 = _mm256_sub_ps(s0, _mm256_loadu_ps(t + i));
      const __m256 d1 = _mm256_sub_ps(s1, _mm256_loadu_ps(t + i + 8));
      a0 = _mm256_fmadd_ps(d0, d0, a0);
      a1 = _mm256_fmadd_ps(d1, d1, a1);
    }
    if (rest) {
      const __m256 s0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + full)));
      const __m256 s1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + full + 8)));
      const __m256 d0 = _mm256_and_ps(_mm256_sub_ps(s0, _mm256_loadu_ps(t + full)), keep0);
      const __m256 d1 = _mm256_and_ps(_mm256_sub_ps(s1, _mm256_loadu_ps(t + full + 8)), keep1);
      a0 = _mm256_fmadd_ps(d0, d0, a0);
      a1 = _mm256_fmadd_ps(d1, d1, a1);
    }
    if (ssd_checks_row(j, rows)) {
      const float acc = ssd_horizontal(_mm256_add_ps(a0, a1));
      if (acc >= bound || j == rows - 1) return acc;
    }
  }
  return 0.f;
#elif RR_SIMD_VARIANT == RR_SIMD_NEON
  float32x4_t a[4] = {vdupq_n_f32(0.f), vdupq_n_f32(0.f), vdupq_n_f32(0.f), vdupq_n_f32(0.f)};  // lanes 0-3, ..., 12-15
  const int full = len & ~15, rest = len - full;
  const int32x4_t index = {0, 1, 2, 3};
  uint32x4_t keep[4];
  for (int q = 0; q < 4; ++q) keep[q] = vcltq_s32(index, vdupq_n_s32(rest - 4 * q));
  for (int j = 0; j < rows; ++j, s += s_stride, t += t_stride) {
    for (int i = 0; i < full; i += 16)
      for (int q = 0; q < 4; ++q) {
        const float32x4_t d = vsubq_f32(vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(s + i + 4 * q))), vld1q_f32(t + i + 4 * q));
        a[q] = vfmaq_f32(a[q], d, d);
      }
    if (rest)
      for (int q = 0; q < 4; ++q) {
        const float32x4_t d = vsubq_f32(vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(s + full + 4 * q))), vld1q_f32(t + full + 4 * q));
        const float32x4_t dk = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(d), keep[q]));
        a[q] = vfmaq_f32(a[q], dk, dk);
      }
    if (ssd_checks_row(j, rows)) {
      const float32x4_t h = vaddq_f32(vaddq_f32(a[0], a[2]), vaddq_f32(a[1], a[3]));
      const float acc = vpadds_f32(vadd_f32(vget_low_f32(h), vget_high_f32(h)));  // (h0 + h2) + (h1 + h3)
      if (acc >= bound || j == rows - 1) return acc;
    }
  }
  return 0.f;
#elif RR_SIMD_VARIANT == RR_SIMD_BASELINE && defined(__SSE2__)
  __m128 a[4] = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()};  // lanes 0-3, ..., 12-15
  const int full = len & ~15, rest = len - full;
  __m128 keep[4];
  for (int q = 0; q < 4; ++q)
    keep[q] = _mm_castsi128_ps(_mm_cmplt_epi32(_mm_setr_epi32(0, 1, 2, 3), _mm_set1_epi32(rest - 4 * q)));
  for (int j = 0; j < rows; ++j, s += s_stride, t += t_stride) {
    for (int i = 0; i < full; i += 16)
      for (int q = 0; q < 4; ++q)
        a[q] = fma_square(_mm_sub_ps(half4_to_float(s + i + 4 * q), _mm_loadu_ps(t + i + 4 * q)), a[q]);
    if (rest)
      for (int q = 0; q < 4; ++q)
        a[q] = fma_square(_mm_and_ps(_mm_sub_ps(half4_to_float(s + full + 4 * q), _mm_loadu_ps(t + full + 4 * q)), keep[q]),
                          a[q]);
    if (ssd_checks_row(j, rows)) {
      __m128 h = _mm_add_ps(_mm_add_ps(a[0], a[2]), _mm_add_ps(a[1], a[3]));
      h = _mm_add_ps(h, _mm_movehl_ps(h, h));
      h = _mm_add_ss(h, _mm_shuffle_ps(h, h, _MM_SHUFFLE(1, 1, 1, 1)));
      const float acc = _mm_cvtss_f32(h);
      if (acc >= bound || j == rows - 1) return acc;
    }
  }
  return 0.f;
#else
  return ssd_portable(s, s_stride, t, t_stride, rows, len, bound);
#endif
}

// Ask for the first rows of a source patch ahead of its evaluation (random candidates are
// scattered over the source: their first touch is a cache miss).
inline void prefetch_patch(const Feat* s, size_t stride, int len, int rows) {
  const char* c = reinterpret_cast<const char*>(s);
  const size_t bytes = static_cast<size_t>(len) * sizeof(Feat);
  for (int j = 0; j < rows; ++j, c += stride * sizeof(Feat))
    for (size_t b = 0; b < bytes + 63; b += 64) __builtin_prefetch(c + b, 0, 3);
}


// Sum of the p x p counts whose top-left is `o` in a grid of row stride `ws`. (Masked loads
// never touch memory outside the patch.)
inline int64_t patch_sum(const int32_t* o, size_t ws, int p) {
#if RR_SIMD_VARIANT >= RR_SIMD_AVX2
  // A lane sums one column of a chunk: at most p * |target| (each count is at most |target|),
  // within int32 up to 69 Mpx targets at p = 31; chunks are summed in 64 bits.
  __m256i acc64 = _mm256_setzero_si256();
  for (int i = 0; i < p; i += 8) {
    const __m256i m = lanes(std::min(8, p - i));
    const int32_t* r = o + i;
    __m256i acc = _mm256_setzero_si256();
    for (int j = 0; j < p; ++j, r += ws) acc = _mm256_add_epi32(acc, _mm256_maskload_epi32(r, m));
    acc64 = _mm256_add_epi64(acc64, _mm256_cvtepi32_epi64(_mm256_castsi256_si128(acc)));
    acc64 = _mm256_add_epi64(acc64, _mm256_cvtepi32_epi64(_mm256_extracti128_si256(acc, 1)));
  }
  const __m128i h = _mm_add_epi64(_mm256_castsi256_si128(acc64), _mm256_extracti128_si256(acc64, 1));
  return _mm_cvtsi128_si64(h) + _mm_extract_epi64(h, 1);
#elif RR_SIMD_VARIANT == RR_SIMD_NEON
  // Four columns a lane group (int32, as above), the last p % 4 columns one by one: no load
  // reaches past the patch.
  int64x2_t acc64 = vdupq_n_s64(0);
  int64_t tail = 0;
  const int full = p & ~3;
  for (int i = 0; i < full; i += 4) {
    const int32_t* r = o + i;
    int32x4_t acc = vdupq_n_s32(0);
    for (int j = 0; j < p; ++j, r += ws) acc = vaddq_s32(acc, vld1q_s32(r));
    acc64 = vpadalq_s32(acc64, acc);
  }
  for (int j = 0; j < p; ++j)
    for (int i = full; i < p; ++i) tail += o[j * ws + i];
  return vaddvq_s64(acc64) + tail;
#else
  int64_t s = 0;
  for (int j = 0; j < p; ++j, o += ws)
    for (int i = 0; i < p; ++i) s += o[i];
  return s;
#endif
}

// Add v to the p x p counts whose top-left is `o` (atomically where other threads add too).
inline void patch_add(int32_t* o, size_t ws, int p, int v, bool atomic) {
  if (atomic) {
    for (int j = 0; j < p; ++j, o += ws)
      for (int i = 0; i < p; ++i) __atomic_fetch_add(o + i, v, __ATOMIC_RELAXED);
    return;
  }
#if RR_SIMD_VARIANT >= RR_SIMD_AVX2
  const __m256i add = _mm256_set1_epi32(v);
  for (int i = 0; i < p; i += 8) {
    const __m256i m = lanes(std::min(8, p - i));
    int32_t* r = o + i;
    for (int j = 0; j < p; ++j, r += ws) _mm256_maskstore_epi32(r, m, _mm256_add_epi32(_mm256_maskload_epi32(r, m), add));
  }
#elif RR_SIMD_VARIANT == RR_SIMD_NEON
  const int32x4_t add = vdupq_n_s32(v);
  const int full = p & ~3;
  for (int j = 0; j < p; ++j, o += ws) {
    for (int i = 0; i < full; i += 4) vst1q_s32(o + i, vaddq_s32(vld1q_s32(o + i), add));
    for (int i = full; i < p; ++i) o[i] += v;
  }
#else
  for (int j = 0; j < p; ++j, o += ws)
    for (int i = 0; i < p; ++i) o[i] += v;
#endif
}

}  // namespace rerender::synthesis::RR_SIMD_NS::detail
