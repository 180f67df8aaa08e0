// Every SIMD variant computes the same bits: the kernels side by side on random data, then whole
// syntheses with each path this CPU supports forced in turn.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/half.h"
#include "core/simd.h"
#include "core/synthesis.h"
#include "kernels.h"
#include "synthesis_case.h"

using namespace rerender;

namespace {

uint32_t bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// Patches as PatchMatch sees them: features of a few hundred at most, half-rounded targets
// near the source (small differences: long exact sums) or far from it (early exits); and, beyond
// what PatchMatch produces, tiny unrounded differences whose sums fall below the normal float
// range (the baseline's exact fallback there).
struct PatchData {
  std::vector<uint16_t> src;
  std::vector<float> tgt;
  int rows, len;
  size_t s_stride, t_stride;
};

PatchData random_patches(std::mt19937& rng, int p, int d, float spread, bool tiny) {
  std::uniform_real_distribution<float> u(-1000.f, 1000.f), n(-1.f, 1.f);
  PatchData pd;
  pd.rows = p;
  pd.len = p * d;
  pd.s_stride = static_cast<size_t>(pd.len) + 16 * (rng() % 3);
  pd.t_stride = static_cast<size_t>(pd.len) + 16 * (rng() % 3);
  pd.src.resize(pd.s_stride * p);
  pd.tgt.resize(pd.t_stride * p);
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

bool cpu_has_avx2() {
#if defined(RERENDER_SIMD_X86)
  __builtin_cpu_init();
  return __builtin_cpu_supports("x86-64-v3");
#else
  return false;  // (no AVX2 variant in this build)
#endif
}

}  // namespace

TEST_CASE("the baseline and AVX2 patch SSDs equal the plain C++ definition, bit for bit") {
  std::vector<const KernelSet*> sets = {&kernels_baseline};
#if defined(RERENDER_SIMD_X86)
  if (cpu_has_avx2()) sets.push_back(&kernels_avx2);
  else MESSAGE("no AVX2 on this CPU: AVX2 kernels not compared");
#endif
  std::mt19937 rng(7);
  int early = 0, total = 0;
  for (int trial = 0; trial < 20000; ++trial) {
    const int p = 3 + 2 * static_cast<int>(rng() % 4), d = 16 * (1 + static_cast<int>(rng() % 3));
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
        REQUIRE(bits(k->ssd(args)) == bits(want));
      }
    }
  }
  CHECK(early > total / 10);  // the early exits were exercised too
}

TEST_CASE("the occupancy sums and feature conversions agree across variants") {
  std::vector<const KernelSet*> sets = {&kernels_baseline};
#if defined(RERENDER_SIMD_X86)
  if (cpu_has_avx2()) sets.push_back(&kernels_avx2);
#endif
  std::mt19937 rng(3);
  const int ws = 70;
  for (int p = 3; p <= 31; p += 2) {
    std::vector<int32_t> counts(static_cast<size_t>(ws) * 40);
    for (int32_t& c : counts) c = static_cast<int32_t>(rng() % 100000);
    for (const KernelSet* k : sets) {
      std::vector<int32_t> added = counts;
      k->patch_add(added.data() + 3 * ws + 5, ws, p, -7);
      int64_t want = 0;
      for (int j = 0; j < p; ++j)
        for (int i = 0; i < p; ++i) {
          want += counts[(3 + j) * ws + 5 + i];
          CHECK(added[(3 + j) * ws + 5 + i] == counts[(3 + j) * ws + 5 + i] - 7);
        }
      CHECK(k->patch_sum(counts.data() + 3 * ws + 5, ws, p) == want);
      CHECK(added[3 * ws + 5 + p] == counts[3 * ws + 5 + p]);  // nothing outside the patch
    }
  }
  std::uniform_real_distribution<float> u(-70000.f, 70000.f);
  for (int i = 0; i < 100000; ++i) {
    const float f = u(rng) * std::ldexp(1.f, -static_cast<int>(rng() % 40));
    for (const KernelSet* k : sets) REQUIRE(k->to_feat(f) == float_to_half(f));
  }
  for (uint32_t h = 0; h < 65536; ++h)
    for (const KernelSet* k : sets)
      if (!std::isnan(half_to_float(static_cast<uint16_t>(h))))
        REQUIRE(bits(k->from_feat(static_cast<uint16_t>(h))) == bits(half_to_float(static_cast<uint16_t>(h))));
}

TEST_CASE("synthesis gives the same bytes on every SIMD path this CPU supports") {
  const simd::Path before = simd::active();
  const auto paths = simd::supported();
  REQUIRE(paths.front() == simd::Path::Baseline);
  for (const SynthesisCase& c : synthesis_cases()) {
    std::vector<synthesis::Result> results;
    for (simd::Path path : paths) {
      REQUIRE(simd::set_active(path));
      results.push_back(c.run(2));
    }
    for (size_t i = 1; i < results.size(); ++i) {
      INFO(c.name, ": ", simd::name(paths[i]), " vs ", simd::name(paths[0]));
      CHECK(results[i].nnf == results[0].nnf);
      CHECK(std::memcmp(results[i].image.data(), results[0].image.data(), results[0].image.size() * 4) == 0);
      CHECK(std::memcmp(results[i].error.data(), results[0].error.data(), results[0].error.size() * 4) == 0);
    }
  }
  simd::set_active(before);
  MESSAGE("SIMD paths compared: ", paths.size());
}
