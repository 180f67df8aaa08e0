// Guided patch-based synthesis on the GPU (see cuda/synthesis.h): the CUDA steps of the shared
// schedule (core/synthesis_schedule.h) and their kernels. One thread per target pixel in every
// kernel; all per-level data stay on the device.
#include "cuda/synthesis.h"

#include <cmath>
#include <utility>

#include "core/rng.h"
#include "core/sampling.h"  // clampi, clampf
#include "core/synthesis_schedule.h"
#include "cuda/check.cuh"

namespace rerender::cuda {
namespace {

namespace syn = rerender::synthesis;

// ---- the level being solved, as seen by the kernels ---------------------------------------------

struct Dev {
  const float* src;        // hs x ws x d: scaled style + guide features
  const float* src_style;  // hs x ws x cs: raw style (what the vote averages)
  float* tgt;              // ht x wt x d: scaled guides + current synthesis (style slots)
  const uint8_t* mask;     // ht x wt: 1 = synthesise
  float* out;              // ht x wt x cs: current synthesis (raw)
  float* err;              // ht x wt: plain patch error of the current match
  int* omega;              // hs x ws: target patches covering each source pixel
  uint8_t* active;         // ht x wt: searched in the next PatchMatch
  int hs, ws, ht, wt, d, cs, p, r;
  float style_scale;
  // valid source centres (the whole patch inside the source)
  __device__ int2 clamp_centre(int x, int y) const {
    return make_int2(clampi(x, r, ws - 1 - r), clampi(y, r, hs - 1 - r));
  }
  __device__ bool valid_centre(int2 q) const { return q.x >= r && q.x <= ws - 1 - r && q.y >= r && q.y <= hs - 1 - r; }
};

__device__ inline bool same(int2 a, int2 b) { return a.x == b.x && a.y == b.y; }

// SSD between the source patch centred at q and the target patch centred at (x, y) (target
// edges replicated), over feature slots [k0, d); stops once it reaches `bound`.
__device__ float patch_error(const Dev& s, int x, int y, int2 q, int k0, float bound) {
  float acc = 0.f;
  for (int dy = -s.r; dy <= s.r; ++dy) {
    const int ty = clampi(y + dy, 0, s.ht - 1);
    const float* srow = s.src + (static_cast<size_t>(q.y + dy) * s.ws + (q.x - s.r)) * s.d;
    for (int dx = -s.r; dx <= s.r; ++dx) {
      const int tx = clampi(x + dx, 0, s.wt - 1);
      const float* sp = srow + static_cast<size_t>(dx + s.r) * s.d;
      const float* tp = s.tgt + (static_cast<size_t>(ty) * s.wt + tx) * s.d;
      for (int k = k0; k < s.d; ++k) {
        const float e = sp[k] - tp[k];
        acc += e * e;
      }
    }
    if (acc >= bound) return acc;
  }
  return acc;
}

__device__ long long omega_sum(const Dev& s, int2 q) {
  long long sum = 0;
  for (int dy = -s.r; dy <= s.r; ++dy) {
    const int* row = s.omega + static_cast<size_t>(q.y + dy) * s.ws + (q.x - s.r);
    for (int dx = 0; dx < s.p; ++dx) sum += row[dx];
  }
  return sum;
}

__device__ void omega_add(const Dev& s, int2 q, int v) {
  for (int dy = -s.r; dy <= s.r; ++dy) {
    int* row = s.omega + static_cast<size_t>(q.y + dy) * s.ws + (q.x - s.r);
    for (int dx = 0; dx < s.p; ++dx) atomicAdd(row + dx, v);
  }
}

// Pixels shared by the source patches centred at a and b.
__device__ int overlap(int p, int2 a, int2 b) {
  const int dx = abs(a.x - b.x), dy = abs(a.y - b.y);
  return dx < p && dy < p ? (p - dx) * (p - dy) : 0;
}

// The current best match of one pixel while candidates are tried (as the CPU's `attempt`):
// a candidate wins if E + occupancy is lower; omega follows every change.
struct Match {
  int2 cur;
  float e, best;
};

struct Uniformity {
  float lambda, occ_unit;  // occ_unit: energy of one unit of omega summed over a patch
};

__device__ Match start_match(const Dev& s, const Uniformity& u, int2 cur, float e) {
  const float occ = u.lambda > 0 ? u.occ_unit * static_cast<float>(omega_sum(s, cur) - s.p * s.p) : 0.f;
  return {cur, e, e + occ};
}

__device__ void attempt(const Dev& s, const Uniformity& u, int x, int y, int k0, int2 cand, Match& m) {
  if (same(cand, m.cur)) return;
  const float e = patch_error(s, x, y, cand, k0, m.best);
  if (e >= m.best) return;
  float occ = 0.f;
  if (u.lambda > 0) {
    occ = u.occ_unit * static_cast<float>(omega_sum(s, cand) - overlap(s.p, m.cur, cand));
    if (e + occ >= m.best) return;
    omega_add(s, m.cur, -1);
    omega_add(s, cand, +1);
  }
  m = {cand, e, e + occ};
}

// ---- kernels -----------------------------------------------------------------------------------

template <typename T>
__global__ void pack_kernel(const T* plane, size_t n, int c, float scale, float* feat, int d, int offset) {
  for (size_t i = global_index(); i < n; i += grid_stride())
    for (int k = 0; k < c; ++k) feat[i * d + offset + k] = static_cast<float>(plane[i * c + k]) * scale;
}

template <typename T>
__global__ void to_float_kernel(const T* in, size_t n, float* out) {
  for (size_t i = global_index(); i < n; i += grid_stride()) out[i] = static_cast<float>(in[i]);
}

// 2x2 box average, as the CPU pyramid.
__global__ void halve_kernel(const float* in, int h, int w, int c, float* out, int h2, int w2) {
  const size_t n = static_cast<size_t>(h2) * w2;
  for (size_t i = global_index(); i < n; i += grid_stride()) {
    const int x = static_cast<int>(i % w2), y = static_cast<int>(i / w2);
    const int y0 = min(2 * y, h - 1), y1 = min(2 * y + 1, h - 1);
    const int x0 = min(2 * x, w - 1), x1 = min(2 * x + 1, w - 1);
    const float* a = in + (static_cast<size_t>(y0) * w + x0) * c;
    const float* b = in + (static_cast<size_t>(y0) * w + x1) * c;
    const float* e = in + (static_cast<size_t>(y1) * w + x0) * c;
    const float* f = in + (static_cast<size_t>(y1) * w + x1) * c;
    for (int k = 0; k < c; ++k) out[i * c + k] = 0.25f * (a[k] + b[k] + e[k] + f[k]);
  }
}

__global__ void halve_mask_kernel(const uint8_t* in, int h, int w, uint8_t* out, int h2, int w2) {
  const size_t n = static_cast<size_t>(h2) * w2;
  for (size_t i = global_index(); i < n; i += grid_stride()) {
    const int x = static_cast<int>(i % w2), y = static_cast<int>(i / w2);
    uint8_t m = 0;
    for (int dy = 0; dy < 2; ++dy)
      for (int dx = 0; dx < 2; ++dx) m |= in[static_cast<size_t>(min(2 * y + dy, h - 1)) * w + min(2 * x + dx, w - 1)];
    out[i] = m;
  }
}

__global__ void binarise_kernel(uint8_t* mask, size_t n) {
  for (size_t i = global_index(); i < n; i += grid_stride()) mask[i] = mask[i] ? 1 : 0;
}

__global__ void count_kernel(const uint8_t* mask, size_t n, unsigned long long* count) {
  unsigned long long local = 0;
  for (size_t i = global_index(); i < n; i += grid_stride()) local += mask[i];
  if (local) atomicAdd(count, local);
}

// Coarsest level: the warm start where given (scaled down), random elsewhere.
__global__ void init_nnf_kernel(Dev s, int2* nnf, const int32_t* init, int init_w, int init_h, int scale, uint64_t seed) {
  const size_t n = static_cast<size_t>(s.ht) * s.wt;
  for (size_t i = global_index(); i < n; i += grid_stride()) {
    const int x = static_cast<int>(i % s.wt), y = static_cast<int>(i / s.wt);
    int qx = -1, qy = -1;
    if (init) {
      const int fx = min(x * scale, init_w - 1), fy = min(y * scale, init_h - 1);
      const int32_t* e = init + (static_cast<size_t>(fy) * init_w + fx) * 2;
      if (e[0] >= 0 && e[1] >= 0) qx = e[0] / scale, qy = e[1] / scale;
    }
    if (qx < 0) {
      Rng rng(seed, kInitStream, n, i);
      qx = rng.range(s.r, s.ws - 1 - s.r);
      qy = rng.range(s.r, s.hs - 1 - s.r);
    }
    nnf[i] = s.clamp_centre(qx, qy);
  }
}

// Each coarse entry covers its 2x2 block, coordinates doubled plus the offset in the block.
__global__ void upsample_kernel(Dev s, int2* nnf, const int2* coarse, int cht, int cwt) {
  const size_t n = static_cast<size_t>(s.ht) * s.wt;
  for (size_t i = global_index(); i < n; i += grid_stride()) {
    const int x = static_cast<int>(i % s.wt), y = static_cast<int>(i / s.wt);
    const int cy = min(y / 2, cht - 1), cx = min(x / 2, cwt - 1);
    const int2 c = coarse[static_cast<size_t>(cy) * cwt + cx];
    nnf[i] = s.clamp_centre(2 * c.x + (x - 2 * cx), 2 * c.y + (y - 2 * cy));
  }
}

__global__ void errors_kernel(Dev s, const int2* nnf, bool only_active, int k0) {
  const size_t n = static_cast<size_t>(s.ht) * s.wt;
  for (size_t i = global_index(); i < n; i += grid_stride())
    if (only_active ? s.active[i] : s.mask[i])
      s.err[i] = patch_error(s, static_cast<int>(i % s.wt), static_cast<int>(i / s.wt), nnf[i], k0, INFINITY);
}

__global__ void omega_kernel(Dev s, const int2* nnf) {
  const size_t n = static_cast<size_t>(s.ht) * s.wt;
  for (size_t i = global_index(); i < n; i += grid_stride())
    if (s.mask[i]) omega_add(s, nnf[i], 1);
}

// Jump-flood propagation at distance k: every active pixel tries its four neighbours at distance
// k, shifted back by the offset; reads `in`, writes `out` (no races between pixels).
__global__ void propagate_kernel(Dev s, Uniformity u, int k0, int jump, const int2* in, int2* out) {
  const size_t n = static_cast<size_t>(s.ht) * s.wt;
  for (size_t i = global_index(); i < n; i += grid_stride()) {
    if (!s.active[i]) {
      out[i] = in[i];
      continue;
    }
    const int x = static_cast<int>(i % s.wt), y = static_cast<int>(i / s.wt);
    Match m = start_match(s, u, in[i], s.err[i]);
    const int ox[4] = {-jump, jump, 0, 0}, oy[4] = {0, 0, -jump, jump};
    for (int t = 0; t < 4; ++t) {
      const int nx = x + ox[t], ny = y + oy[t];
      if (nx < 0 || nx >= s.wt || ny < 0 || ny >= s.ht) continue;
      const size_t ni = static_cast<size_t>(ny) * s.wt + nx;
      if (!s.mask[ni]) continue;
      const int2 q = in[ni];
      const int2 cand = make_int2(q.x - ox[t], q.y - oy[t]);
      if (s.valid_centre(cand)) attempt(s, u, x, y, k0, cand, m);
    }
    out[i] = m.cur;
    s.err[i] = m.e;
  }
}

// Random search around the current match at radii halving from max_radius (the image size unless
// Params::search_radius is smaller) down to 1.
__global__ void search_kernel(Dev s, Uniformity u, int k0, int2* nnf, uint64_t seed, int pass, int max_radius) {
  const size_t n = static_cast<size_t>(s.ht) * s.wt;
  for (size_t i = global_index(); i < n; i += grid_stride()) {
    if (!s.active[i]) continue;
    const int x = static_cast<int>(i % s.wt), y = static_cast<int>(i / s.wt);
    Rng rng(seed, static_cast<uint64_t>(pass), kSearchStream, i);
    Match m = start_match(s, u, nnf[i], s.err[i]);
    const int2 centre = m.cur;
    for (int rad = max_radius; rad >= 1; rad /= 2) {
      const int dx = rng.range(-rad, rad), dy = rng.range(-rad, rad);
      attempt(s, u, x, y, k0, s.clamp_centre(centre.x + dx, centre.y + dy), m);
    }
    nnf[i] = m.cur;
    s.err[i] = m.e;
  }
}

// Every pixel becomes the mean of the source pixels the covering patches map it to (as the CPU).
// With track_changes, the pixels whose value moved by >= stop_threshold become the active ones.
__global__ void vote_kernel(Dev s, const int2* nnf, float stop_threshold, bool track_changes) {
  const size_t n = static_cast<size_t>(s.ht) * s.wt;
  for (size_t i = global_index(); i < n; i += grid_stride()) {
    const int x = static_cast<int>(i % s.wt), y = static_cast<int>(i / s.wt);
    float change = 0.f;
    bool covered = false;
    for (int k = 0; k < s.cs; ++k) {
      float acc = 0.f;
      int count = 0;
      for (int dy = -s.r; dy <= s.r; ++dy) {
        const int ty = y - dy;  // centre of a target patch covering (x, y)
        if (ty < 0 || ty >= s.ht) continue;
        for (int dx = -s.r; dx <= s.r; ++dx) {
          const int tx = x - dx;
          if (tx < 0 || tx >= s.wt) continue;
          const size_t ti = static_cast<size_t>(ty) * s.wt + tx;
          if (!s.mask[ti]) continue;
          const int2 q = nnf[ti];
          acc += s.src_style[(static_cast<size_t>(q.y + dy) * s.ws + q.x + dx) * s.cs + k];
          ++count;
        }
      }
      if (count == 0) break;  // not covered by any synthesised patch: keep the old value
      covered = true;
      const float v = acc * (1.f / static_cast<float>(count));
      change = fmaxf(change, fabsf(v - s.out[i * s.cs + k]));
      s.out[i * s.cs + k] = v;
    }
    if (track_changes) s.active[i] = s.mask[i] && covered && change >= stop_threshold;
  }
}

// The style slots of the target features follow the synthesis.
__global__ void refresh_style_kernel(Dev s) {
  const size_t n = static_cast<size_t>(s.ht) * s.wt;
  for (size_t i = global_index(); i < n; i += grid_stride())
    for (int k = 0; k < s.cs; ++k) s.tgt[i * s.d + k] = s.out[i * s.cs + k] * s.style_scale;
}

// The results in the caller's buffers; nothing is synthesised off the mask (as the CPU).
__device__ inline void store_value(float* dst, float v) { *dst = v; }
__device__ inline void store_value(uint8_t* dst, float v) {
  *dst = static_cast<uint8_t>(lroundf(clampf(v, 0.f, 255.f)));  // the CPU binding's conversion
}

template <typename T>
__global__ void export_kernel(Dev s, const int2* nnf, T* image, int32_t* nnf_out, float* err_out) {
  const size_t n = static_cast<size_t>(s.ht) * s.wt;
  for (size_t i = global_index(); i < n; i += grid_stride()) {
    const bool on = s.mask[i] != 0;
    nnf_out[2 * i] = on ? nnf[i].x : -1;
    nnf_out[2 * i + 1] = on ? nnf[i].y : -1;
    err_out[i] = on ? s.err[i] : 0.f;
    for (int k = 0; k < s.cs; ++k) store_value(image + i * s.cs + k, on ? s.out[i * s.cs + k] : 0.f);
  }
}

// ---- host side ---------------------------------------------------------------------------------

struct Level {
  int hs = 0, ws = 0, ht = 0, wt = 0;
  Buffer src, src_style, tgt, mask;
};

// Copies caller data (host or device memory, see cuda/synthesis.h) to the device.
void copy_in(void* dst, const void* src, size_t bytes) {
  if (pointer_device(src) >= 0) copy_device_to_device(dst, src, bytes);
  else copy_to_device(dst, src, bytes);
}

template <typename T>
void pack_plane(const syn::Plane& pl, float scale, float* feat, int d, int offset) {
  const size_t n = static_cast<size_t>(pl.h) * pl.w;
  if (pointer_device(pl.data) >= 0) {  // a caller's device array: read in place
    RR_LAUNCH(pack_kernel<T>, n, static_cast<const T*>(pl.data), n, pl.c, scale, feat, d, offset);
    return;
  }
  const size_t bytes = n * pl.c * sizeof(T);
  Buffer raw(bytes);
  copy_to_device(raw.get(), pl.data, bytes);
  RR_LAUNCH(pack_kernel<T>, n, raw.as<T>(), n, pl.c, scale, feat, d, offset);
  synchronize();  // `raw` is freed on return
}

void pack(const syn::Plane& pl, float scale, float* feat, int d, int offset) {
  if (pl.is_float) pack_plane<float>(pl, scale, feat, d, offset);
  else pack_plane<uint8_t>(pl, scale, feat, d, offset);
}

std::vector<Level> build_pyramid(const syn::Plane& style, const std::vector<syn::Guide>& guides, int ht, int wt,
                                 const uint8_t* target_mask, int levels, int d, float style_scale) {
  std::vector<Level> pyr(levels);
  Level& f = pyr[0];
  f.hs = style.h, f.ws = style.w, f.ht = ht, f.wt = wt;
  const size_t ns = static_cast<size_t>(f.hs) * f.ws, nt = static_cast<size_t>(ht) * wt;
  const int cs = style.c;
  f.src = Buffer(ns * d * sizeof(float));
  f.tgt = Buffer(nt * d * sizeof(float));
  f.src_style = Buffer(ns * cs * sizeof(float));
  f.mask = Buffer(nt);
  check(cudaMemset(f.src.get(), 0, f.src.bytes()), "cudaMemset");
  check(cudaMemset(f.tgt.get(), 0, f.tgt.bytes()), "cudaMemset");
  pack(style, style_scale, f.src.as<float>(), d, 0);
  pack(style, 1.0f, f.src_style.as<float>(), cs, 0);  // raw style values
  int offset = cs;
  for (const syn::Guide& g : guides) {
    const float scale = std::sqrt(g.weight / static_cast<float>(g.source.c));
    pack(g.source, scale, f.src.as<float>(), d, offset);
    pack(g.target, scale, f.tgt.as<float>(), d, offset);
    offset += g.source.c;
  }
  if (target_mask) {
    copy_in(f.mask.get(), target_mask, nt);
    RR_LAUNCH(binarise_kernel, nt, f.mask.as<uint8_t>(), nt);
  } else {
    check(cudaMemset(f.mask.get(), 1, nt), "cudaMemset");
  }
  for (int l = 1; l < levels; ++l) {
    const Level& a = pyr[l - 1];
    Level& b = pyr[l];
    b.hs = syn::level_size(f.hs, l), b.ws = syn::level_size(f.ws, l);
    b.ht = syn::level_size(ht, l), b.wt = syn::level_size(wt, l);
    const size_t bs = static_cast<size_t>(b.hs) * b.ws, bt = static_cast<size_t>(b.ht) * b.wt;
    b.src = Buffer(bs * d * sizeof(float));
    b.src_style = Buffer(bs * cs * sizeof(float));
    b.tgt = Buffer(bt * d * sizeof(float));
    b.mask = Buffer(bt);
    RR_LAUNCH(halve_kernel, bs, a.src.as<float>(), a.hs, a.ws, d, b.src.as<float>(), b.hs, b.ws);
    RR_LAUNCH(halve_kernel, bs, a.src_style.as<float>(), a.hs, a.ws, cs, b.src_style.as<float>(), b.hs, b.ws);
    RR_LAUNCH(halve_kernel, bt, a.tgt.as<float>(), a.ht, a.wt, d, b.tgt.as<float>(), b.ht, b.wt);
    RR_LAUNCH(halve_mask_kernel, bt, a.mask.as<uint8_t>(), a.ht, a.wt, b.mask.as<uint8_t>(), b.ht, b.wt);
  }
  synchronize();
  return pyr;
}

// Working state of one level (device buffers) and the kernels' view of it.
struct State {
  Buffer out, err, omega, active, nnf, nnf_next;
  Dev dev{};
  double omega_best = 1.0;
  size_t n = 0;
  int2* nnf_ptr() const { return nnf.as<int2>(); }
};

// Number of nonzero bytes of a device array (`scratch`: a device unsigned long long).
unsigned long long count_nonzero(const uint8_t* data, size_t n, const Buffer& scratch) {
  check(cudaMemset(scratch.get(), 0, sizeof(unsigned long long)), "cudaMemset");
  RR_LAUNCH(count_kernel, n, data, n, scratch.as<unsigned long long>());
  unsigned long long count = 0;
  copy_to_host(&count, scratch.get(), sizeof count);
  return count;
}

void init_state(State& st, Level& lv, int d, int cs, int p, float style_scale, const Buffer& scratch) {
  const size_t nt = static_cast<size_t>(lv.ht) * lv.wt, ns = static_cast<size_t>(lv.hs) * lv.ws;
  st.n = nt;
  st.out = Buffer(nt * cs * sizeof(float));
  st.err = Buffer(nt * sizeof(float));
  st.omega = Buffer(ns * sizeof(int));
  st.active = Buffer(nt);
  st.nnf = Buffer(nt * sizeof(int2));
  st.nnf_next = Buffer(nt * sizeof(int2));
  check(cudaMemset(st.out.get(), 0, st.out.bytes()), "cudaMemset");
  check(cudaMemset(st.err.get(), 0, st.err.bytes()), "cudaMemset");
  copy_device_to_device(st.active.get(), lv.mask.get(), nt);  // every synthesised pixel starts active
  Dev& s = st.dev;
  s.src = lv.src.as<float>();
  s.src_style = lv.src_style.as<float>();
  s.tgt = lv.tgt.as<float>();  // this level's own copy: its style slots now follow the synthesis
  s.mask = lv.mask.as<uint8_t>();
  s.out = st.out.as<float>();
  s.err = st.err.as<float>();
  s.omega = st.omega.as<int>();
  s.active = st.active.as<uint8_t>();
  s.hs = lv.hs, s.ws = lv.ws, s.ht = lv.ht, s.wt = lv.wt;
  s.d = d, s.cs = cs, s.p = p, s.r = p / 2;
  s.style_scale = style_scale;
  const unsigned long long masked = count_nonzero(s.mask, nt, scratch);
  st.omega_best = (static_cast<double>(masked) / static_cast<double>(ns)) * p * p;
}

// One PatchMatch call: errors of the active pixels over feature slots [k0, d) (k0 = cs: guides
// only), then jump-flood propagation and random search.
void patchmatch(State& st, const syn::Params& prm, int k0, uint64_t seed) {
  Dev& s = st.dev;
  RR_LAUNCH(errors_kernel, st.n, s, st.nnf_ptr(), true, k0);
  Uniformity u{prm.uniformity, 0.f};
  if (prm.uniformity > 0) {
    u.occ_unit = static_cast<float>(prm.uniformity / (static_cast<double>(s.p) * s.p * st.omega_best));
    check(cudaMemset(st.omega.get(), 0, st.omega.bytes()), "cudaMemset");
    RR_LAUNCH(omega_kernel, st.n, s, st.nnf_ptr());
  }
  for (int it = 0; it < prm.patchmatch_iters; ++it) {
    for (int jump : {4, 2, 1}) {
      RR_LAUNCH(propagate_kernel, st.n, s, u, k0, jump, st.nnf.as<int2>(), st.nnf_next.as<int2>());
      std::swap(st.nnf, st.nnf_next);
    }
    RR_LAUNCH(search_kernel, st.n, s, u, k0, st.nnf_ptr(), seed, it, syn::first_search_radius(prm, s.hs, s.ws));
  }
}

// The schedule's steps on the GPU (see core/synthesis_schedule.h for what each does). Guide-only
// searches leave the style slots out of the patch error (k0 = cs); the target's style slots
// always follow the vote.
class CudaSteps {
 public:
  CudaSteps(std::vector<Level>& pyr, const syn::Params& prm, int d, int cs, float style_scale, const int32_t* init,
            int ht, int wt)
      : pyr_(pyr), prm_(prm), d_(d), cs_(cs), style_scale_(style_scale), init_(init), ht_(ht), wt_(wt),
        scratch_(sizeof(unsigned long long)) {}

  void begin_level(int level) { init_state(st_, pyr_[level], d_, cs_, prm_.patch_size, style_scale_, scratch_); }
  void init_coarsest(int level) {
    RR_LAUNCH(init_nnf_kernel, st_.n, st_.dev, st_.nnf_ptr(), init_, wt_, ht_, 1 << level, prm_.seed);
  }
  void upsample() { RR_LAUNCH(upsample_kernel, st_.n, st_.dev, st_.nnf_ptr(), prev_.nnf_ptr(), prev_.dev.ht, prev_.dev.wt); }
  void style_term(bool on) { k0_ = on ? 0 : cs_; }
  void search(uint64_t seed) { patchmatch(st_, prm_, k0_, seed); }
  void vote(bool track) {
    RR_LAUNCH(vote_kernel, st_.n, st_.dev, st_.nnf_ptr(), prm_.stop_threshold, track);
    RR_LAUNCH(refresh_style_kernel, st_.n, st_.dev);
  }
  void activate_all() { copy_device_to_device(st_.active.get(), st_.dev.mask, st_.n); }
  bool any_active() { return count_nonzero(st_.dev.active, st_.n, scratch_) > 0; }
  void end_level(int level) {
    std::swap(prev_, st_);
    if (level > 0) {  // the finer levels no longer need this one's pyramid data
      pyr_[level].src = Buffer();
      pyr_[level].src_style = Buffer();
      pyr_[level].tgt = Buffer();
    }
  }
  // After the schedule: the finest level's state.
  State& finest() { return prev_; }

 private:
  std::vector<Level>& pyr_;
  const syn::Params& prm_;
  int d_, cs_;
  float style_scale_;
  const int32_t* init_;  // device copy of the warm start, or null
  int ht_, wt_;
  int k0_ = 0;
  Buffer scratch_;  // one device counter
  State prev_, st_;
};

}  // namespace

void synthesize(const syn::Plane& style, const std::vector<syn::Guide>& guides, int ht, int wt, const int32_t* init_nnf,
                const uint8_t* target_mask, const syn::Params& prm, const Outputs& out) {
  const int cs = style.c;
  const int levels = syn::resolved_levels(prm, init_nnf != nullptr, style.h, style.w, ht, wt);
  int d = cs;
  for (const syn::Guide& g : guides) d += g.source.c;
  const float style_scale = std::sqrt(prm.style_weight / static_cast<float>(cs));

  std::vector<Level> pyr = build_pyramid(style, guides, ht, wt, target_mask, levels, d, style_scale);
  Buffer init;
  if (init_nnf) {
    init = Buffer(static_cast<size_t>(ht) * wt * 2 * sizeof(int32_t));
    copy_in(init.get(), init_nnf, init.bytes());
  }
  CudaSteps steps(pyr, prm, d, cs, style_scale, init_nnf ? init.as<int32_t>() : nullptr, ht, wt);
  syn::run_schedule(steps, levels, init_nnf != nullptr, prm.search_vote_iters, prm.seed);

  State& fin = steps.finest();
  RR_LAUNCH(errors_kernel, fin.n, fin.dev, fin.nnf_ptr(), false, 0);
  if (out.image_u8)
    RR_LAUNCH(export_kernel<uint8_t>, fin.n, fin.dev, fin.nnf_ptr(), static_cast<uint8_t*>(out.image), out.nnf, out.error);
  else
    RR_LAUNCH(export_kernel<float>, fin.n, fin.dev, fin.nnf_ptr(), static_cast<float*>(out.image), out.nnf, out.error);
  synchronize();  // the results are complete on return
}

}  // namespace rerender::cuda
