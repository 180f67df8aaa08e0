// The plain C++ half-float conversions (core/half.h) against known values and, where the CPU has
// F16C, against the hardware on every half and around every rounding boundary. (All 2^32 floats
// were also compared once, outside the suite: identical.)
#include <doctest/doctest.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>

#include "core/half.h"

using rerender::float_to_half;
using rerender::half_to_float;

namespace {

#if defined(__x86_64__)
__attribute__((target("f16c"))) uint16_t hw_to_half(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }
__attribute__((target("f16c"))) float hw_from_half(uint16_t h) { return _cvtsh_ss(h); }

bool cpu_has_f16c() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("f16c");
}
#else
uint16_t hw_to_half(float) { return 0; }
float hw_from_half(uint16_t) { return 0.f; }
bool cpu_has_f16c() { return false; }  // (the comparison is with x86's F16C)
#endif

uint32_t bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}
float from_bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

}  // namespace

TEST_CASE("half conversions: known values") {
  CHECK(float_to_half(1.0f) == 0x3C00);
  CHECK(float_to_half(-2.0f) == 0xC000);
  CHECK(float_to_half(65504.0f) == 0x7BFF);                 // the largest half
  CHECK(float_to_half(65519.996f) == 0x7BFF);               // just below the rounding point to inf
  CHECK(float_to_half(65520.0f) == 0x7C00);                 // rounds to inf
  CHECK(float_to_half(std::ldexp(1.0f, -24)) == 0x0001);    // the smallest subnormal
  CHECK(float_to_half(std::ldexp(1.0f, -25)) == 0x0000);    // halfway to it: ties to even (zero)
  CHECK(float_to_half(std::ldexp(3.0f, -26)) == 0x0001);    // 0.75 of it: rounds up
  CHECK(float_to_half(std::ldexp(3.0f, -25)) == 0x0002);    // 1.5 of it: ties to even (2)
  CHECK(float_to_half(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);  // halfway above 1: ties to even
  CHECK(float_to_half(1.0f + std::ldexp(3.0f, -11)) == 0x3C02);  // halfway above 1 + ulp: up to even
  CHECK(half_to_float(0x0001) == std::ldexp(1.0f, -24));
  CHECK(half_to_float(0x03FF) == std::ldexp(1023.0f, -24));
  CHECK(half_to_float(0x7C00) == std::numeric_limits<float>::infinity());
  CHECK(std::isnan(half_to_float(0x7E00)));
  CHECK(bits(half_to_float(0x8000)) == 0x80000000u);
  for (uint32_t h = 0; h < 0x7C00; ++h) CHECK(float_to_half(half_to_float(static_cast<uint16_t>(h))) == h);
}

TEST_CASE("half conversions equal F16C") {
  if (!cpu_has_f16c()) {
    MESSAGE("no F16C on this CPU: hardware comparison skipped");
    return;
  }
  for (uint32_t h = 0; h < 65536; ++h) {
    const float a = half_to_float(static_cast<uint16_t>(h)), b = hw_from_half(static_cast<uint16_t>(h));
    REQUIRE(bits(a) == bits(b));
  }
  // around every rounding boundary: each half, the midpoint to the next, and their neighbours
  for (uint32_t h = 0; h < 0x7C00; ++h)
    for (uint32_t sign : {0u, 0x8000u}) {
      const float lo = half_to_float(static_cast<uint16_t>(h | sign)), hi = half_to_float(static_cast<uint16_t>((h + 1) | sign));
      const uint32_t mid = bits(0.5f * (lo + hi));
      for (uint32_t b : {bits(lo) - 1, bits(lo), bits(lo) + 1, mid - 1, mid, mid + 1}) {
        const float f = from_bits(b);
        REQUIRE(float_to_half(f) == hw_to_half(f));
      }
    }
  std::mt19937 rng(1);
  for (int i = 0; i < 2000000; ++i) {
    const float f = from_bits(static_cast<uint32_t>(rng()));
    REQUIRE(float_to_half(f) == hw_to_half(f));
  }
}
