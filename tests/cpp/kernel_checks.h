// Checks that a variant's kernels (kernels.h) compute the bits of the plain C++ definition: run by
// test_simd.cpp on the variants this CPU executes, and by test_emulated.cpp on the variants it
// can only emulate (SIMDe). Call them inside a doctest test case.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/half.h"
#include "kernels.h"

namespace kernel_checks {

inline uint32_t bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// Patches as PatchMatch sees them: features of a few hundred at most, half-rounded targets
// near the source (small differences: long exact sums) or far from it (early exits); and, beyond
// what PatchMatch produces, tiny unrounded differences whose sums fall below the normal float
// range (the x86 baseline's exact fallback there).
struct PatchData {
  std::vector<uint16_t> src;
  std::vector<float> tgt;
  int rows, len;
  size_t s_stride, t_stride;
};

// d: values per pixel; not a multiple of 16 (the compact guide-only features), the rows are
// followed by other values (the next pixels'), which the SSD must leave out.
inline PatchData random_patches(std::mt19937& rng, int p, int d, float spread, bool tiny) {
  using rerender::float_to_half, rerender::half_to_float;
  std::uniform_real_distribution<float> u(-1000.f, 1000.f), n(-1.f, 1.f);
  PatchData pd;
  pd.rows = p;
  pd.len = p * d;
  pd.s_stride = static_cast<size_t>(pd.len) + 16 * (rng() % 3) + (d % 16 ? rng() % 7 : 0);
  pd.t_stride = static_cast<size_t>(pd.len) + 16 * (rng() % 3) + (d % 16 ? rng() % 7 : 0);
  pd.src.resize(pd.s_stride * p + 15);  // (15 readable values after the last row)
  pd.tgt.resize(pd.t_stride * p + 15);
  for (float& v : pd.tgt) v = u(rng);  // (the values past each row's len)
  for (size_t i = 0; i < pd.src.size(); ++i) pd.src[i] = tiny ? 0 : float_to_half(u(rng) * (rng() % 4 ? 1.f : 1e-6f));
  for (int j = 0; j < p; ++j)
    for (int i = 0; i < pd.len; ++i) {
      const float s = half_to_float(pd.src[j * pd.s_stride + i]);
      if (tiny) {
        pd.tgt[j * pd.t_stride + i] = std::ldexp(n(rng), -60 - static_cast<int>(rng() % 30));
        continue;
      }
      const float t = rng() % 8 ? s + spread * n(rng) : u(rng);
      pd.tgt[j * pd.t_stride + i] = half_to_float(float_to_half(t));
    }
  return pd;
}

// Every set's SSD equals ssd_portable bit for bit, at bounds that stop it early or not.
inline void ssd_matches_definition(const std::vector<const KernelSet*>& sets, int trials) {
  std::mt19937 rng(7);
  int early = 0, total = 0;
  for (int trial = 0; trial < trials; ++trial) {
    const int p = 3 + 2 * static_cast<int>(rng() % 4);
    const int d = trial % 2 ? 1 + static_cast<int>(rng() % 40) : 16 * (1 + static_cast<int>(rng() % 3));
    const float spread = std::ldexp(1.f, -static_cast<int>(rng() % 30));
    const PatchData pd = random_patches(rng, p, d, spread, trial % 10 == 0);
    const float full = kernels_baseline.ssd_portable({pd.src.data(), pd.s_stride, pd.tgt.data(), pd.t_stride, p, pd.len,
                                                      INFINITY});
    for (float bound : {INFINITY, full, full * 0.5f, full * 0.01f, 0.f}) {
      const SsdArgs args{pd.src.data(), pd.s_stride, pd.tgt.data(), pd.t_stride, p, pd.len, bound};
      const float want = kernels_baseline.ssd_portable(args);
      early += want < full;
      ++total;
      for (const KernelSet* k : sets) {
        INFO(k->name, " p=", p, " d=", d, " bound=", bound);
        REQUIRE(bits(k->ssd_portable(args)) == bits(want));  // (the definition is the same in every set)
        REQUIRE(bits(k->ssd(args)) == bits(want));
      }
    }
  }
  CHECK(early > total / 10);  // the early exits were exercised too
}

// patch_sum and patch_add touch exactly the p x p patch, for every odd p up to 31 (the SIMD
// versions cover it in chunks: every remainder of the chunk width occurs).
inline void occupancy_matches_definition(const std::vector<const KernelSet*>& sets) {
  std::mt19937 rng(3);
  const int ws = 70;
  for (int p = 3; p <= 31; p += 2) {
    std::vector<int32_t> counts(static_cast<size_t>(ws) * 40);
    for (int32_t& c : counts) c = static_cast<int32_t>(rng() % 100000);
    for (const KernelSet* k : sets) {
      INFO(k->name, " p=", p);
      std::vector<int32_t> added = counts;
      k->patch_add(added.data() + 3 * ws + 5, ws, p, -7);
      int64_t want = 0;
      for (int j = 0; j < p; ++j)
        for (int i = 0; i < p; ++i) {
          want += counts[(3 + j) * ws + 5 + i];
          CHECK(added[(3 + j) * ws + 5 + i] == counts[(3 + j) * ws + 5 + i] - 7);
        }
      CHECK(k->patch_sum(counts.data() + 3 * ws + 5, ws, p) == want);
      for (size_t i = 0; i < counts.size(); ++i) {  // nothing outside the patch
        const int y = static_cast<int>(i) / ws - 3, x = static_cast<int>(i) % ws - 5;
        if (y < 0 || y >= p || x < 0 || x >= p) REQUIRE(added[i] == counts[i]);
      }
    }
  }
}

// to_feat and from_feat are core/half.h's conversions (NaNs aside: only their being NaN matters).
inline void conversions_match_definition(const std::vector<const KernelSet*>& sets) {
  using rerender::float_to_half, rerender::half_to_float;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-70000.f, 70000.f);
  for (int i = 0; i < 100000; ++i) {
    const float f = u(rng) * std::ldexp(1.f, -static_cast<int>(rng() % 40));
    for (const KernelSet* k : sets) REQUIRE(k->to_feat(f) == float_to_half(f));
  }
  for (uint32_t h = 0; h < 65536; ++h)
    for (const KernelSet* k : sets) {
      const float want = half_to_float(static_cast<uint16_t>(h)), got = k->from_feat(static_cast<uint16_t>(h));
      if (std::isnan(want)) REQUIRE(std::isnan(got));
      else REQUIRE(bits(got) == bits(want));
    }
}

}  // namespace kernel_checks
