// Per-pixel arithmetic of the histogram-preserving blend, written once for the CPU and the CUDA
// kernels (host + device). Multiply-adds are explicit fma (see core/sampling.h for why).
#pragma once
#include <math.h>
#include <stddef.h>

#include "core/host_device.h"

namespace rerender {

// Variance-preserving combination of two standard normal values (Heitz & Neyret 2018, eq. 5
// with mean 0): stays standard normal for independent inputs, w_b = 1 - w_a.
RR_HD inline double blend_gauss(double ga, double gb, double wa) {
  const double wb = 1.0 - wa;
  const double s = fma(wa, wa, wb * wb);  // >= 0.5 for w_a in [0, 1]; guarded anyway
  return fma(wa, ga, wb * gb) / sqrt(s > 1e-12 ? s : 1e-12);
}

// Inverse CDF of uint8 data: the first value v with g <= upper[v], where
// upper[v] = Phi^-1(P(X <= v)) (non-decreasing, upper[255] = +inf).
RR_HD inline int byte_inverse(const double* upper, double g) {
  int lo = 0, hi = 255;  // invariant: the answer lies in [lo, hi]
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (g <= upper[mid]) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

// Inverse CDF of float data with ascending values `sorted` at probability u: the continuous
// inverse of u = (rank + 0.5) / n, interpolating between neighbouring ranks.
RR_HD inline float sorted_quantile(const float* sorted, size_t n, double u) {
  double pos = fma(u, static_cast<double>(n), -0.5);
  pos = pos < 0.0 ? 0.0 : (pos > static_cast<double>(n - 1) ? static_cast<double>(n - 1) : pos);
  const size_t i0 = static_cast<size_t>(pos);
  const size_t i1 = i0 + 1 < n ? i0 + 1 : n - 1;
  const double t = pos - static_cast<double>(i0);
  return static_cast<float>(fma(1.0 - t, static_cast<double>(sorted[i0]), t * sorted[i1]));
}

// The Gaussian value of rank group [lo, hi] (tied values share the mid-rank) among n values.
RR_HD inline double mid_rank_probability(size_t lo, size_t hi, size_t n) {
  return fma(0.5, static_cast<double>(lo + hi), 0.5) / static_cast<double>(n);
}

}  // namespace rerender
