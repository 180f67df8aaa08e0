// The AVX-512 kernels (run here on SIMDe's emulation of the intrinsics) compute the bits of the
// plain C++ definition, as the AVX2 and baseline kernels do (test_simd.cpp).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/half.h"
#include "kernels.h"

TEST_CASE("AVX-512 patch SSD equals the plain C++ definition, bit for bit") {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1000.f, 1000.f), n(-1.f, 1.f);
  for (int trial = 0; trial < 20000; ++trial) {
    const int p = 3 + 2 * static_cast<int>(rng() % 4), d = 16 * (1 + static_cast<int>(rng() % 3)), len = p * d;
    const size_t ss = len + 16 * (rng() % 2), ts = len + 16 * (rng() % 2);
    std::vector<uint16_t> src(ss * p);
    std::vector<float> tgt(ts * p);
    const float spread = std::ldexp(1.f, -static_cast<int>(rng() % 30));
    for (auto& h : src) h = rerender::float_to_half(u(rng));
    for (int j = 0; j < p; ++j)
      for (int i = 0; i < len; ++i)
        tgt[j * ts + i] = rerender::half_to_float(rerender::float_to_half(
            rng() % 8 ? rerender::half_to_float(src[j * ss + i]) + spread * n(rng) : u(rng)));
    const float full = kernels_avx512_simde.ssd_portable({src.data(), ss, tgt.data(), ts, p, len, INFINITY});
    for (float bound : {INFINITY, full, full * 0.3f, 0.f}) {
      const SsdArgs a{src.data(), ss, tgt.data(), ts, p, len, bound};
      const float want = kernels_avx512_simde.ssd_portable(a), got = kernels_avx512_simde.ssd(a);
      uint32_t bw, bg;
      std::memcpy(&bw, &want, 4);
      std::memcpy(&bg, &got, 4);
      REQUIRE(bg == bw);
    }
  }
  for (int i = 0; i < 100000; ++i) {
    const float f = u(rng) * std::ldexp(1.f, -static_cast<int>(rng() % 40));
    REQUIRE(kernels_avx512_simde.to_feat(f) == rerender::float_to_half(f));
  }
}
