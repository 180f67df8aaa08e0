// Synthesis inputs for the C++ tests: a smooth random texture as guide, its colour-mapped
// version as style, and a target guide displaced by a known smooth field.
#pragma once
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/sampling.h"
#include "core/synthesis.h"

namespace rerender {

inline std::vector<uint8_t> smooth_texture(int h, int w, int c, unsigned seed) {
  std::mt19937 rng(seed);
  const int ch = h / 4 + 2, cw = w / 4 + 2;
  std::vector<float> coarse(static_cast<size_t>(ch) * cw * c);
  for (float& v : coarse) v = static_cast<float>(rng() % 256);
  std::vector<uint8_t> out(static_cast<size_t>(h) * w * c);
  std::vector<float> px(c);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      bilinear_at(coarse.data(), ch, cw, c, x / 4.f, y / 4.f, px.data());
      for (int k = 0; k < c; ++k) out[(static_cast<size_t>(y) * w + x) * c + k] = round_u8(px[k]);
    }
  return out;
}

struct SynthesisCase {
  std::string name;
  int n = 0;
  std::vector<uint8_t> style, source, target;
  std::vector<float> fsource, ftarget;  // a float32 positional guide
  std::vector<int32_t> warm;            // a warm start, or empty
  synthesis::Params params;

  synthesis::Result run(int threads) const {
    synthesis::Params prm = params;
    prm.threads = threads;
    std::vector<synthesis::Guide> guides = {
        {{source.data(), n, n, 3, false}, {target.data(), n, n, 3, false}, 6.f},
        {{fsource.data(), n, n, 2, true}, {ftarget.data(), n, n, 2, true}, 2.f}};
    return synthesis::synthesize({style.data(), n, n, 3, false}, guides, n, n, warm.empty() ? nullptr : warm.data(),
                                 nullptr, prm);
  }
};

// A case of size n: the target is the source moved by (3 sin, 2 cos) of the other coordinate.
inline SynthesisCase displaced_case(const std::string& name, int n, uint64_t seed) {
  SynthesisCase c;
  c.name = name;
  c.n = n;
  c.source = smooth_texture(n, n, 3, 1);
  c.style = smooth_texture(n, n, 3, 2);
  c.target.resize(c.source.size());
  c.fsource.resize(static_cast<size_t>(n) * n * 2);
  c.ftarget.resize(c.fsource.size());
  std::vector<float> px(3);
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) {
      const size_t i = static_cast<size_t>(y) * n + x;
      const float sx = x + 3.f * std::sin(6.2831853f * y / n), sy = y + 2.f * std::cos(6.2831853f * x / n);
      bilinear_at(c.source.data(), n, n, 3, sx, sy, px.data());
      for (int k = 0; k < 3; ++k) c.target[3 * i + k] = round_u8(px[k]);
      c.fsource[2 * i] = x * 255.f / n, c.fsource[2 * i + 1] = y * 255.f / n;
      c.ftarget[2 * i] = sx * 255.f / n, c.ftarget[2 * i + 1] = sy * 255.f / n;
    }
  c.params.seed = seed;
  return c;
}

// Cold and warm-started cases, large enough that PatchMatch and the vote run on several threads
// (they stay on one below ~16k pixels to search, 64k to vote).
inline std::vector<SynthesisCase> synthesis_cases() {
  std::vector<SynthesisCase> cases;
  SynthesisCase cold = displaced_case("cold 256", 256, 5);
  cold.params.search_vote_iters = 4;
  cold.params.patchmatch_iters = 3;
  cases.push_back(cold);
  SynthesisCase warm = displaced_case("warm 256", 256, 9);
  warm.warm = cold.run(2).nnf;
  cases.push_back(warm);
  SynthesisCase small = displaced_case("small 72, patch 7, no uniformity", 72, 3);
  small.params.patch_size = 7;
  small.params.uniformity = 0.f;
  cases.push_back(small);
  return cases;
}

}  // namespace rerender
