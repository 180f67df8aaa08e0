// Identities of the native ops: warp, occlusion, histogram blend, min-error combination.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <type_traits>
#include <vector>

#include "core/histblend.h"
#include "core/occlusion.h"
#include "core/warp.h"

using namespace rerender;

namespace {

template <typename T>
std::vector<T> random_image(int h, int w, int c, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<T> img(static_cast<size_t>(h) * w * c);
  for (T& v : img) v = static_cast<T>(rng() % 256) + (std::is_same_v<T, float> ? static_cast<T>(rng() % 1000) / 1000 : 0);
  return img;
}

std::vector<float> constant_flow(int h, int w, float dx, float dy) {
  std::vector<float> flow(static_cast<size_t>(h) * w * 2);
  for (size_t i = 0; i < flow.size(); i += 2) flow[i] = dx, flow[i + 1] = dy;
  return flow;
}

}  // namespace

TEST_CASE_TEMPLATE("warp by a zero flow is the identity", T, uint8_t, float) {
  const int h = 37, w = 53, c = 3;
  const auto img = random_image<T>(h, w, c, 1);
  const auto flow = constant_flow(h, w, 0.f, 0.f);
  for (WarpMode mode : {WarpMode::Bilinear, WarpMode::Nearest}) {
    std::vector<T> out(img.size());
    std::vector<uint8_t> valid(static_cast<size_t>(h) * w);
    warp(ImageView<const T>(img.data(), h, w, c), ImageView<const float>(flow.data(), h, w, 2), mode,
         ImageView<T>(out.data(), h, w, c), valid.data(), 2);
    CHECK(out == img);
    CHECK(std::count(valid.begin(), valid.end(), 1) == h * w);
  }
}

TEST_CASE("warp by an integer translation moves the image, clamping at the border") {
  const int h = 20, w = 30, c = 2, dx = 3, dy = -2;
  const auto img = random_image<uint8_t>(h, w, c, 2);
  const auto flow = constant_flow(h, w, dx, dy);
  for (WarpMode mode : {WarpMode::Bilinear, WarpMode::Nearest}) {
    std::vector<uint8_t> out(img.size()), valid(static_cast<size_t>(h) * w);
    warp(ImageView<const uint8_t>(img.data(), h, w, c), ImageView<const float>(flow.data(), h, w, 2), mode,
         ImageView<uint8_t>(out.data(), h, w, c), valid.data(), 1);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        const int sx = std::clamp(x + dx, 0, w - 1), sy = std::clamp(y + dy, 0, h - 1);
        const bool inside = x + dx <= w - 1 && y + dy >= 0;
        CHECK(valid[static_cast<size_t>(y) * w + x] == inside);
        for (int k = 0; k < c; ++k) CHECK(out[(static_cast<size_t>(y) * w + x) * c + k] == img[(static_cast<size_t>(sy) * w + sx) * c + k]);
      }
  }
}

TEST_CASE("nearest warp by a flow beyond the int range samples the near border") {
  // (a float position of 3e9 once wrapped through int to the opposite border)
  const int h = 4, w = 5;
  std::vector<uint8_t> img(static_cast<size_t>(h) * w), out(img.size());
  for (size_t i = 0; i < img.size(); ++i) img[i] = static_cast<uint8_t>(i);
  for (float f : {2.2e9f, 3e9f, 1e30f, -3e9f, -1e30f}) {
    const auto flow = constant_flow(h, w, f, f);
    warp(ImageView<const uint8_t>(img.data(), h, w, 1), ImageView<const float>(flow.data(), h, w, 2), WarpMode::Nearest,
         ImageView<uint8_t>(out.data(), h, w, 1), nullptr, 1);
    const uint8_t corner = f > 0 ? img.back() : img.front();
    for (uint8_t v : out) CHECK(v == corner);
  }
}

TEST_CASE("occlusion: consistent flows are unoccluded inside the frame, inconsistent ones occluded") {
  const int h = 24, w = 32;
  const auto forward = constant_flow(h, w, 3.f, 1.f);
  const auto backward = constant_flow(h, w, -3.f, -1.f);
  std::vector<uint8_t> mask(static_cast<size_t>(h) * w);
  occlusion(ImageView<const float>(forward.data(), h, w, 2), ImageView<const float>(backward.data(), h, w, 2), 0.01f,
            0.5f, mask.data(), 2);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) CHECK(mask[static_cast<size_t>(y) * w + x] == (x + 3 > w - 1 || y + 1 > h - 1));
  const auto same_way = constant_flow(h, w, 3.f, 1.f);  // b(x + f) = f: |f + b| = 2|f|
  occlusion(ImageView<const float>(forward.data(), h, w, 2), ImageView<const float>(same_way.data(), h, w, 2), 0.01f,
            0.5f, mask.data(), 2);
  CHECK(std::count(mask.begin(), mask.end(), 1) == h * w);
}

// Identical inputs are not returned unchanged at weights in between: the blend is
// variance-preserving for independent inputs, (w_a G + w_b G) / sqrt(w_a^2 + w_b^2) scales a
// fully correlated G by up to sqrt(2) (more contrast). What does hold: the result is the same
// monotone map of the input at every pixel, and weights 1 and 0 give the inputs exactly.
TEST_CASE_TEMPLATE("histogram blend of identical inputs is a monotone map of them; weight 1 / 0 returns a / b", T,
                   uint8_t, float) {
  const int h = 31, w = 29, c = 3;
  const auto a = random_image<T>(h, w, c, 3), b = random_image<T>(h, w, c, 4);
  std::vector<T> out(a.size());
  BlendWeight half;
  half.scalar = 0.5f;
  histogram_blend(ImageView<const T>(a.data(), h, w, c), ImageView<const T>(a.data(), h, w, c), half, {},
                  ImageView<T>(out.data(), h, w, c), 2);
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t j = i % c; j < a.size(); j += c * 7) {  // same channel
      if (a[i] == a[j]) CHECK(out[i] == out[j]);
      if (a[i] < a[j]) CHECK(out[i] <= out[j]);
    }
  for (float wa : {1.f, 0.f}) {
    BlendWeight weight;
    weight.scalar = wa;
    histogram_blend(ImageView<const T>(a.data(), h, w, c), ImageView<const T>(b.data(), h, w, c), weight, {},
                    ImageView<T>(out.data(), h, w, c), 2);
    CHECK(out == (wa == 1.f ? a : b));
  }
}

TEST_CASE("min-error combination takes the candidate of lower error, ties to a") {
  const int h = 3, w = 4, c = 2;
  const auto a = random_image<uint8_t>(h, w, c, 5), b = random_image<uint8_t>(h, w, c, 6);
  const std::vector<float> ea = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, eb = {1, 1, 1, 1, 9, 9, 9, 9, 0, 0, 0, 1e30f};
  std::vector<uint8_t> out(a.size()), take(static_cast<size_t>(h) * w);
  min_error_combine(ImageView<const uint8_t>(a.data(), h, w, c), ImageView<const uint8_t>(b.data(), h, w, c), ea.data(),
                    eb.data(), ImageView<uint8_t>(out.data(), h, w, c), take.data(), 1);
  for (size_t i = 0; i < take.size(); ++i) {
    CHECK(take[i] == (ea[i] <= eb[i]));
    for (int k = 0; k < c; ++k) CHECK(out[i * c + k] == (take[i] ? a : b)[i * c + k]);
  }
}
