#include "core/histblend.h"

#include "core/histblend_math.h"
#include "core/sampling.h"  // round_u8

#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <new>
#include <utility>
#include <vector>

namespace rerender {

double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

double normal_quantile(double p) {
  if (p <= 0.0) return -std::numeric_limits<double>::infinity();
  if (p >= 1.0) return std::numeric_limits<double>::infinity();
  // Acklam's rational approximation (relative error < 1.2e-9) ...
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                             1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01,  -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                             3.754408661907416e+00};
  const double p_low = 0.02425;
  double x;
  // (Horner steps as explicit fma: see core/sampling.h for why)
  auto poly = [](const double* k, int degree, double t, double last) {
    double v = k[0];
    for (int i = 1; i <= degree; ++i) v = std::fma(v, t, i < degree ? k[i] : last);
    return v;
  };
  if (p < p_low || p > 1.0 - p_low) {
    const double q = std::sqrt(-2.0 * std::log(p < p_low ? p : 1.0 - p));
    x = poly(c, 5, q, c[5]) / poly(d, 4, q, 1.0);
    if (p > p_low) x = -x;
  } else {
    const double q = p - 0.5, r = q * q;
    x = poly(a, 5, r, a[5]) * q / poly(b, 5, r, 1.0);
  }
  // ... refined by one Halley step on Phi(x) = p to full double precision.
  const double e = normal_cdf(x) - p;
  const double sqrt_2pi = 2.5066282746310002;
  const double u = e * sqrt_2pi * std::exp(0.5 * x * x);
  return x - u / std::fma(0.5 * x, u, 1.0);
}

ByteCdf byte_cdf(const uint64_t* hist) {
  uint64_t n = 0;
  for (int v = 0; v < 256; ++v) n += hist[v];
  ByteCdf out;
  uint64_t below = 0;
  for (int v = 0; v < 256; ++v) {
    const uint64_t count = hist[v];
    // Mid-CDF of the value's step = (mid-rank + 0.5) / N: ties map to one Gaussian value.
    out.to_gauss[v] = count ? normal_quantile(std::fma(0.5, static_cast<double>(count), static_cast<double>(below)) /
                                              static_cast<double>(n))
                            : 0.0;
    below += count;
    out.upper[v] = below == n ? std::numeric_limits<double>::infinity()
                              : normal_quantile(static_cast<double>(below) / n);
  }
  return out;
}

namespace {

inline int resolve_threads(int threads) { return threads > 0 ? threads : omp_get_max_threads(); }

// ---- uint8: the whole transform of a channel fits in 256-entry tables ----------------------

std::vector<ByteCdf> byte_cdfs(ImageView<const uint8_t> img) {
  const int c = img.c;
  const size_t n = img.pixels();
  std::vector<uint64_t> hist(static_cast<size_t>(c) * 256, 0);
  for (size_t i = 0; i < n; ++i)
    for (int ch = 0; ch < c; ++ch) ++hist[ch * 256 + img.data[i * c + ch]];
  std::vector<ByteCdf> out(c);
  for (int ch = 0; ch < c; ++ch) out[ch] = byte_cdf(&hist[ch * 256]);
  return out;
}

void blend_bytes(ImageView<const uint8_t> a, ImageView<const uint8_t> b, BlendWeight weight,
                 ImageView<const uint8_t> ref, ImageView<uint8_t> out, int threads) {
  const int c = a.c;
  const auto ta = byte_cdfs(a), tb = byte_cdfs(b);
  const bool has_ref = !ref.empty();
  const auto tr = has_ref ? byte_cdfs(ref) : std::vector<ByteCdf>();
  const long n = static_cast<long>(a.pixels());
#pragma omp parallel for num_threads(resolve_threads(threads)) schedule(static)
  for (long i = 0; i < n; ++i) {
    const double wa = weight.at(i);
    for (int ch = 0; ch < c; ++ch) {
      const size_t k = static_cast<size_t>(i) * c + ch;
      const double g = blend_gauss(ta[ch].to_gauss[a.data[k]], tb[ch].to_gauss[b.data[k]], wa);
      if (has_ref) {
        out.data[k] = static_cast<uint8_t>(byte_inverse(tr[ch].upper, g));
      } else {
        const double v = std::fma(wa, byte_inverse(ta[ch].upper, g), (1.0 - wa) * byte_inverse(tb[ch].upper, g));
        out.data[k] = round_u8(static_cast<float>(v));
      }
    }
  }
}

// ---- float32: ranks by sorting, inverse by interpolating the sorted values ------------------

struct FloatChannel {
  std::vector<float> sorted;  // the channel's values, ascending (for T^-1)
  std::vector<float> gauss;   // T(value) per pixel (only for the blended inputs)
  float inverse(double g) const { return sorted_quantile(sorted.data(), sorted.size(), normal_cdf(g)); }
};

FloatChannel float_channel(ImageView<const float> img, int ch, bool with_gauss) {
  const size_t n = img.pixels();
  std::vector<std::pair<float, uint32_t>> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = {img.data[i * img.c + ch], static_cast<uint32_t>(i)};
  std::sort(order.begin(), order.end());
  FloatChannel out;
  out.sorted.resize(n);
  for (size_t i = 0; i < n; ++i) out.sorted[i] = order[i].first;
  if (with_gauss) {
    out.gauss.resize(n);
    for (size_t lo = 0; lo < n;) {
      size_t hi = lo;
      while (hi + 1 < n && order[hi + 1].first == order[lo].first) ++hi;
      const double g = normal_quantile(mid_rank_probability(lo, hi, n));
      for (size_t r = lo; r <= hi; ++r) out.gauss[order[r].second] = static_cast<float>(g);
      lo = hi + 1;
    }
  }
  return out;
}

void blend_floats(ImageView<const float> a, ImageView<const float> b, BlendWeight weight,
                  ImageView<const float> ref, ImageView<float> out, int threads) {
  const int c = a.c;
  const bool has_ref = !ref.empty();
  // One sort per (image, channel): independent jobs, spread over the threads.
  std::vector<FloatChannel> ta(c), tb(c), tr(has_ref ? c : 0);
  const int jobs = (has_ref ? 3 : 2) * c;
  int out_of_memory = 0;  // (an exception must not leave an OpenMP region)
#pragma omp parallel for num_threads(resolve_threads(threads)) schedule(dynamic, 1)
  for (int j = 0; j < jobs; ++j) {
    const int ch = j % c, which = j / c;
    try {
      if (which == 0) ta[ch] = float_channel(a, ch, true);
      else if (which == 1) tb[ch] = float_channel(b, ch, true);
      else tr[ch] = float_channel(ref, ch, false);
    } catch (const std::bad_alloc&) {
#pragma omp atomic write
      out_of_memory = 1;
    }
  }
  if (out_of_memory) throw std::bad_alloc();
  const long n = static_cast<long>(a.pixels());
#pragma omp parallel for num_threads(resolve_threads(threads)) schedule(static)
  for (long i = 0; i < n; ++i) {
    const double wa = weight.at(i), wb = 1.0 - wa;
    for (int ch = 0; ch < c; ++ch) {
      const size_t k = static_cast<size_t>(i) * c + ch;
      if (!has_ref && (wa == 1.0 || wa == 0.0)) {
        // T^-1(T(x)) = x by construction; skip the round trip that float rounding makes inexact.
        out.data[k] = wa == 1.0 ? a.data[k] : b.data[k];
        continue;
      }
      const double g = blend_gauss(ta[ch].gauss[i], tb[ch].gauss[i], wa);
      out.data[k] = has_ref ? tr[ch].inverse(g)
                            : static_cast<float>(std::fma(wa, ta[ch].inverse(g), wb * tb[ch].inverse(g)));
    }
  }
}

template <typename T>
void combine(ImageView<const T> a, ImageView<const T> b, const float* ea, const float* eb,
             ImageView<T> out, uint8_t* take_a, int threads) {
  const long n = static_cast<long>(a.pixels());
  const int c = a.c;
#pragma omp parallel for num_threads(resolve_threads(threads)) schedule(static)
  for (long i = 0; i < n; ++i) {
    const bool pick_a = ea[i] <= eb[i];
    take_a[i] = pick_a;
    const T* src = (pick_a ? a.data : b.data) + static_cast<size_t>(i) * c;
    std::copy_n(src, c, out.data + static_cast<size_t>(i) * c);
  }
}

}  // namespace

uint64_t histogram_blend_working_bytes(int h, int w, int c, int ref_h, int ref_w, bool is_float, int threads) {
  const uint64_t n = static_cast<uint64_t>(h) * w, n_ref = static_cast<uint64_t>(ref_h) * ref_w;
  const uint64_t tables = static_cast<uint64_t>(c) * 3 * (sizeof(ByteCdf) + 256 * sizeof(uint64_t));
  if (!is_float) return tables;
  // sorted values and Gaussian ranks of a and b per channel, the reference's sorted values, and
  // the (value, index) pairs of the sorts running at once
  const uint64_t jobs = static_cast<uint64_t>(resolve_threads(threads));
  return static_cast<uint64_t>(c) * (16 * n + 4 * n_ref) + jobs * 8 * std::max(n, n_ref) + tables;
}

void histogram_blend(ImageView<const uint8_t> a, ImageView<const uint8_t> b, BlendWeight weight_a,
                     ImageView<const uint8_t> reference, ImageView<uint8_t> out, int threads) {
  blend_bytes(a, b, weight_a, reference, out, threads);
}
void histogram_blend(ImageView<const float> a, ImageView<const float> b, BlendWeight weight_a,
                     ImageView<const float> reference, ImageView<float> out, int threads) {
  blend_floats(a, b, weight_a, reference, out, threads);
}

void min_error_combine(ImageView<const uint8_t> a, ImageView<const uint8_t> b, const float* error_a,
                       const float* error_b, ImageView<uint8_t> out, uint8_t* take_a, int threads) {
  combine(a, b, error_a, error_b, out, take_a, threads);
}
void min_error_combine(ImageView<const float> a, ImageView<const float> b, const float* error_a,
                       const float* error_b, ImageView<float> out, uint8_t* take_a, int threads) {
  combine(a, b, error_a, error_b, out, take_a, threads);
}

}  // namespace rerender
