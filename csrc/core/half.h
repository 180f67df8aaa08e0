// IEEE half-precision conversions in plain C++, bit for bit what the x86 F16C instructions do
// (float -> half rounds to nearest even; NaNs come out quiet): the synthesis stores its source
// features as half floats on every SIMD path, and the paths without F16C (the x86-64 baseline,
// other architectures) must produce the very same bits. Checked against F16C in tests/cpp.
#pragma once
#include <cstdint>
#include <cstring>

namespace rerender {

inline uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  const uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7FFFFFFFu;
  if (ax >= 0x7F800000u)  // inf, or NaN (quieted, payload truncated)
    return static_cast<uint16_t>(sign | 0x7C00u | (ax > 0x7F800000u ? 0x200u | ((ax >> 13) & 0x3FFu) : 0u));
  if (ax >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // >= 65520 rounds to inf
  if (ax >= 0x38800000u) {  // a normal half: rebias the exponent, round the 13 dropped bits
    uint32_t h = (ax - 0x38000000u) >> 13;
    const uint32_t rest = ax & 0x1FFFu;
    h += rest > 0x1000u || (rest == 0x1000u && (h & 1u));
    return static_cast<uint16_t>(sign | h);
  }
  if (ax <= 0x33000000u) return static_cast<uint16_t>(sign);  // <= 2^-25: rounds to zero (ties to even)
  // a subnormal half: the 24-bit significand in units of 2^-24, rounded to nearest even
  const uint32_t m = (ax & 0x7FFFFFu) | 0x800000u, shift = 126u - (ax >> 23);  // 14..24
  uint32_t h = m >> shift;
  const uint32_t rest = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
  h += rest > half || (rest == half && (h & 1u));
  return static_cast<uint16_t>(sign | h);
}

inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
  uint32_t x;
  if (e == 0x1Fu) {
    x = sign | 0x7F800000u | (m << 13) | (m ? 0x400000u : 0u);  // inf, or NaN (quieted)
  } else if (e != 0) {
    x = sign | ((e + 112u) << 23) | (m << 13);
  } else if (m == 0) {
    x = sign;
  } else {  // subnormal half m * 2^-24: normalise
    int k = 9;  // position of the leading bit of m
    while (!(m >> k)) --k;
    x = sign | (static_cast<uint32_t>(k + 103) << 23) | ((m << (23 - k)) & 0x7FFFFFu);
  }
  float f;
  std::memcpy(&f, &x, sizeof f);
  return f;
}

}  // namespace rerender
