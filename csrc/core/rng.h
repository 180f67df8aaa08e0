// The random numbers of the synthesis, written once for the CPU core and the CUDA kernels:
// splitmix64 hashing of four words into the seed of a small xorshift64* stream. A stream is
// addressed by what it is for (seed, pass, row or pixel), never by the thread that draws it, so
// results do not depend on how the work is split.
#pragma once
#include <stdint.h>

#include "core/host_device.h"

namespace rerender {

// What a stream is for (its second or third word), so that no two uses share one.
constexpr uint64_t kInitStream = 0x1u;       // the random NNF of the coarsest level
constexpr uint64_t kSearchStream = 0x5eedu;  // PatchMatch's random search

struct Rng {
  uint64_t s;

  RR_HD static uint64_t mix(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  RR_HD Rng(uint64_t a, uint64_t b, uint64_t c, uint64_t d) : s(mix(mix(mix(mix(a) ^ b) ^ c) ^ d) | 1u) {}
  RR_HD uint32_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return static_cast<uint32_t>((s * 0x2545f4914f6cdd1dull) >> 32);
  }
  // uniform integer in [lo, hi]
  RR_HD int range(int lo, int hi) {
    return lo + static_cast<int>((static_cast<uint64_t>(next()) * static_cast<uint64_t>(hi - lo + 1)) >> 32);
  }
};

}  // namespace rerender
