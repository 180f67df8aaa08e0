// Runs the CUDA backend's warp, occlusion, blending and synthesis kernels serially on the host (see
// cuda_runtime.h here) and checks them against the CPU core: the kernels' indexing and logic are
// then tested on machines without a GPU. Prints one line per check; exit status 1 if any failed.
//
//   usage: check_kernels [size]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "core/histblend.h"
#include "core/occlusion.h"
#include "core/synthesis.h"
#include "core/warp.h"
#include "cuda/ops.h"
#include "cuda/synthesis.h"

using namespace rerender;

namespace {

int failures = 0;

void expect(bool ok, const char* what, double value) {
  std::printf("%s %s (%.4g)\n", ok ? "ok  " : "FAIL", what, value);
  failures += !ok;
}

// Smooth random texture: bilinear upsampling of 4x coarser noise.
std::vector<uint8_t> texture(int n, int c, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.f, 255.f);
  const int m = n / 4 + 2;
  std::vector<float> coarse(static_cast<size_t>(m) * m * c);
  for (float& v : coarse) v = u(rng);
  std::vector<uint8_t> out(static_cast<size_t>(n) * n * c);
  std::vector<float> flow(static_cast<size_t>(n) * n * 2);
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) {
      float px[8];
      bilinear_at(coarse.data(), m, m, c, x / 4.f, y / 4.f, px);
      for (int k = 0; k < c; ++k) out[(static_cast<size_t>(y) * n + x) * c + k] = round_u8(px[k]);
    }
  return out;
}

double psnr(const std::vector<float>& a, const std::vector<uint8_t>& b) {
  double mse = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::lround(std::clamp(a[i], 0.f, 255.f)) - static_cast<double>(b[i]);
    mse += d * d;
  }
  return 10 * std::log10(255.0 * 255.0 / std::max(mse / a.size(), 1e-12));
}

// cuda::synthesize into "device" buffers (host memory here), as the binding calls it. With
// u8_image, `image_u8` receives the uint8 output of the same call.
struct CudaResult {
  std::vector<float> image;
  std::vector<uint8_t> image_u8;
  std::vector<int32_t> nnf;
  std::vector<float> error;
};

CudaResult cuda_synthesis(const synthesis::Plane& style, const std::vector<synthesis::Guide>& guides, int ht, int wt,
                          const int32_t* init, const uint8_t* mask, const synthesis::Params& prm, bool u8_image = false) {
  CudaResult r;
  const size_t n = static_cast<size_t>(ht) * wt;
  r.nnf.assign(2 * n, 7);  // junk: every entry must be written
  r.error.assign(n, -1.f);
  void* image = nullptr;
  if (u8_image) {
    r.image_u8.assign(n * style.c, 7);
    image = r.image_u8.data();
  } else {
    r.image.assign(n * style.c, -1.f);
    image = r.image.data();
  }
  cuda::synthesize(style, guides, ht, wt, init, mask, prm, cuda::Outputs{image, u8_image, r.nnf.data(), r.error.data()});
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 96;
  const auto style = texture(n, 3, 1), guide = texture(n, 3, 2);
  std::vector<float> flow(static_cast<size_t>(n) * n * 2), back(flow.size());
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) {
      const size_t i = static_cast<size_t>(y) * n + x;
      flow[2 * i] = 3.f * std::sin(6.2831853f * y / n);
      flow[2 * i + 1] = 2.f * std::cos(6.2831853f * x / n);
    }
  for (size_t i = 0; i < flow.size(); ++i) back[i] = -flow[i] + (i % 7 == 0 ? 1.5f : 0.f);  // partly inconsistent

  // warp and occlusion: the same arithmetic as the CPU, so identical results
  std::vector<uint8_t> moved(style.size()), exact(style.size()), emu(style.size()), valid_cpu(n * n), valid_emu(n * n);
  const ImageView<const float> fv(flow.data(), n, n, 2);
  warp(ImageView<const uint8_t>(guide.data(), n, n, 3), fv, WarpMode::Bilinear, ImageView<uint8_t>(moved.data(), n, n, 3),
       valid_cpu.data(), 1);
  warp(ImageView<const uint8_t>(style.data(), n, n, 3), fv, WarpMode::Bilinear, ImageView<uint8_t>(exact.data(), n, n, 3),
       nullptr, 1);
  cuda::warp(guide.data(), flow.data(), n, n, 3, false, emu.data(), valid_emu.data());
  expect(emu == moved && valid_cpu == valid_emu, "warp bilinear equals the CPU", 0);
  std::vector<uint8_t> near_cpu(style.size());
  warp(ImageView<const uint8_t>(guide.data(), n, n, 3), fv, WarpMode::Nearest, ImageView<uint8_t>(near_cpu.data(), n, n, 3),
       nullptr, 1);
  cuda::warp(guide.data(), flow.data(), n, n, 3, true, emu.data(), nullptr);
  expect(emu == near_cpu, "warp nearest equals the CPU", 0);
  std::vector<uint8_t> occ_cpu(n * n), occ_emu(n * n);
  occlusion(fv, ImageView<const float>(back.data(), n, n, 2), 0.01f, 0.5f, occ_cpu.data(), 1);
  cuda::occlusion(flow.data(), back.data(), n, n, 0.01f, 0.5f, occ_emu.data());
  size_t occluded = 0;
  for (uint8_t m : occ_cpu) occluded += m;
  expect(occ_cpu == occ_emu && occluded > 0 && occluded < occ_cpu.size(), "occlusion equals the CPU (occluded count)",
         static_cast<double>(occluded));

  // histogram blend and min-error combination
  {
    const size_t np = static_cast<size_t>(n) * n;
    std::vector<float> weight(np);
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    for (float& w : weight) w = u(rng);
    for (int x = 0; x < n; ++x) weight[x] = 1.f, weight[n + x] = 0.f;  // rows 0 / 1: the end points
    const auto reference = texture(n / 2, 3, 3);
    const ImageView<const uint8_t> a(style.data(), n, n, 3), b(guide.data(), n, n, 3), r(reference.data(), n / 2, n / 2, 3);
    BlendWeight bw;
    bw.per_pixel = weight.data();
    // uint8: tables from the device histograms, as the CUDA binding builds them
    auto tables = [&](const std::vector<uint8_t>& img, size_t pixels, std::vector<double>& to_gauss, std::vector<double>& upper) {
      std::vector<uint64_t> hist(3 * 256);
      cuda::byte_histograms(img.data(), pixels, 3, hist.data());
      to_gauss.resize(3 * 256), upper.resize(3 * 256);
      for (int ch = 0; ch < 3; ++ch) {
        const ByteCdf cdf = byte_cdf(&hist[ch * 256]);
        std::copy(cdf.to_gauss, cdf.to_gauss + 256, to_gauss.begin() + ch * 256);
        std::copy(cdf.upper, cdf.upper + 256, upper.begin() + ch * 256);
      }
    };
    std::vector<double> ag, au, bg, bu, rg, ru;
    tables(style, np, ag, au);
    tables(guide, np, bg, bu);
    tables(reference, np / 4, rg, ru);
    for (bool with_ref : {false, true}) {
      std::vector<uint8_t> cpu(style.size()), emu(style.size());
      histogram_blend(a, b, bw, with_ref ? r : ImageView<const uint8_t>(), ImageView<uint8_t>(cpu.data(), n, n, 3), 1);
      const cuda::ByteTables t{ag.data(), bg.data(), au.data(), bu.data(), with_ref ? ru.data() : nullptr};
      cuda::blend_bytes(style.data(), guide.data(), weight.data(), 0.f, np, 3, t, emu.data());
      expect(cpu == emu, with_ref ? "uint8 histogram blend with reference equals the CPU"
                                  : "uint8 histogram blend without reference equals the CPU", 0);
    }
    std::vector<float> af(style.begin(), style.end()), bf(guide.begin(), guide.end()), rf(reference.begin(), reference.end());
    const ImageView<const float> fa(af.data(), n, n, 3), fb(bf.data(), n, n, 3), fr(rf.data(), n / 2, n / 2, 3);
    for (bool with_ref : {false, true}) {
      std::vector<float> cpu(af.size()), emu(af.size());
      histogram_blend(fa, fb, bw, with_ref ? fr : ImageView<const float>(), ImageView<float>(cpu.data(), n, n, 3), 1);
      cuda::blend_floats(af.data(), bf.data(), weight.data(), 0.f, np, 3, with_ref ? rf.data() : nullptr, np / 4, emu.data());
      double worst = 0;
      for (size_t i = 0; i < cpu.size(); ++i) worst = std::max(worst, static_cast<double>(std::fabs(cpu[i] - emu[i])));
      expect(worst <= 1e-3, with_ref ? "float histogram blend with reference matches the CPU (max diff)"
                                     : "float histogram blend without reference matches the CPU (max diff)", worst);
    }
    std::vector<float> ea(np), eb(np);
    for (size_t i = 0; i < np; ++i) ea[i] = u(rng), eb[i] = i % 5 ? u(rng) : ea[i];
    std::vector<uint8_t> cpu(style.size()), emu(style.size()), take_cpu(np), take_emu(np);
    min_error_combine(a, b, ea.data(), eb.data(), ImageView<uint8_t>(cpu.data(), n, n, 3), take_cpu.data(), 1);
    cuda::min_error_combine(style.data(), guide.data(), ea.data(), eb.data(), np, 3, emu.data(), take_emu.data());
    expect(cpu == emu && take_cpu == take_emu, "min-error combination equals the CPU", 0);
  }

  // synthesis: a target displaced by a smooth field; quality as the CPU backend's
  const synthesis::Plane st{style.data(), n, n, 3, false};
  const std::vector<synthesis::Guide> guides = {{{guide.data(), n, n, 3, false}, {moved.data(), n, n, 3, false}, 6.f}};
  synthesis::Params prm;
  prm.search_vote_iters = 6;
  prm.patchmatch_iters = 4;
  prm.threads = 1;
  const auto cpu = synthesis::synthesize(st, guides, n, n, nullptr, nullptr, prm);
  prm.pyramid_levels = synthesis::auto_pyramid_levels(n, n, n, n, prm.patch_size);
  const auto gpu = cuda_synthesis(st, guides, n, n, nullptr, nullptr, prm);
  int ok = 0, total = 0;
  for (int y = 8; y < n - 8; ++y)
    for (int x = 8; x < n - 8; ++x) {
      const size_t i = static_cast<size_t>(y) * n + x;
      ++total;
      ok += std::fabs(gpu.nnf[2 * i] - (x + flow[2 * i])) <= 1 && std::fabs(gpu.nnf[2 * i + 1] - (y + flow[2 * i + 1])) <= 1;
    }
  expect(ok >= 0.95 * total, "synthesis NNF within 1 px of the field (fraction)", double(ok) / total);
  const double p_gpu = psnr(gpu.image, exact), p_cpu = psnr(cpu.image, exact);
  expect(p_gpu >= p_cpu - 1.5, "synthesis PSNR vs the exact warp within 1.5 dB of the CPU's (dB)", p_gpu - p_cpu);
  std::vector<float> e_gpu = gpu.error, e_cpu = cpu.error;
  std::nth_element(e_gpu.begin(), e_gpu.begin() + e_gpu.size() / 2, e_gpu.end());
  std::nth_element(e_cpu.begin(), e_cpu.begin() + e_cpu.size() / 2, e_cpu.end());
  expect(e_gpu[e_gpu.size() / 2] <= 1.5f * e_cpu[e_cpu.size() / 2], "synthesis median error vs the CPU's (ratio)",
         e_gpu[e_gpu.size() / 2] / std::max(e_cpu[e_cpu.size() / 2], 1e-6f));

  // uint8 output (a uint8 style's result): the same run, rounded and clamped as the CPU binding does
  // (serial emulation: the very same computation); its NNF and error equal the float run's
  const auto gpu_u8 = cuda_synthesis(st, guides, n, n, nullptr, nullptr, prm, true);
  size_t u8_bad = 0;
  for (size_t i = 0; i < gpu.image.size(); ++i)
    u8_bad += gpu_u8.image_u8[i] != static_cast<uint8_t>(std::lround(std::clamp(gpu.image[i], 0.f, 255.f)));
  expect(u8_bad == 0 && gpu_u8.nnf == gpu.nnf && gpu_u8.error == gpu.error,
         "uint8 synthesis output is the float output rounded; same nnf and error (bad count)", double(u8_bad));

  // identical guides with a target mask: identity inside, nothing outside
  std::vector<uint8_t> mask(static_cast<size_t>(n) * n, 0);
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n / 2; ++x) mask[static_cast<size_t>(y) * n + x] = 1;
  const std::vector<synthesis::Guide> same = {{{guide.data(), n, n, 3, false}, {guide.data(), n, n, 3, false}, 6.f}};
  const auto masked = cuda_synthesis(st, same, n, n, nullptr, mask.data(), prm);
  int outside_bad = 0, identity = 0, inside = 0;
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) {
      const size_t i = static_cast<size_t>(y) * n + x;
      if (x >= n / 2) {
        outside_bad += masked.nnf[2 * i] != -1 || masked.error[i] != 0.f || masked.image[3 * i] != 0.f;
      } else if (x >= 4 && x < n / 2 - 4 && y >= 4 && y < n - 4) {
        ++inside;
        identity += masked.nnf[2 * i] == x && masked.nnf[2 * i + 1] == y;
      }
    }
  const auto masked_u8 = cuda_synthesis(st, same, n, n, nullptr, mask.data(), prm, true);
  for (int y = 0; y < n; ++y)
    for (int x = n / 2; x < n; ++x) {
      const size_t i = static_cast<size_t>(y) * n + x;
      for (int k = 0; k < 3; ++k) outside_bad += masked_u8.image_u8[3 * i + k] != 0 || masked.image[3 * i + k] != 0.f;
      outside_bad += masked.nnf[2 * i + 1] != -1;
    }
  expect(outside_bad == 0, "masked-out pixels: nnf -1, error 0, image 0 in float and uint8 (bad count)", outside_bad);
  expect(identity >= 0.95 * inside, "identical guides: identity NNF inside the mask (fraction)", double(identity) / inside);

  // warm start from the identity at one level stays there
  std::vector<int32_t> ident(static_cast<size_t>(n) * n * 2);
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) ident[2 * (static_cast<size_t>(y) * n + x)] = x, ident[2 * (static_cast<size_t>(y) * n + x) + 1] = y;
  prm.pyramid_levels = 1;
  const auto warm = cuda_synthesis(st, same, n, n, ident.data(), nullptr, prm);
  identity = inside = 0;
  for (int y = 4; y < n - 4; ++y)
    for (int x = 4; x < n - 4; ++x) {
      const size_t i = static_cast<size_t>(y) * n + x;
      ++inside;
      identity += warm.nnf[2 * i] == x && warm.nnf[2 * i + 1] == y;
    }
  expect(identity >= 0.98 * inside, "warm start from the identity keeps it (fraction)", double(identity) / inside);
  return failures ? 1 : 0;
}
