// PatchMatch with the uniformity (occupancy) term: propagation + random search, alternating
// scan directions, rows split in bands over OpenMP threads. (Compiled once per SIMD variant.)
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <new>
#include <utility>
#include <vector>

#include "core/synthesis_internal.h"

RR_SIMD_BEGIN
namespace rerender::synthesis::RR_SIMD_NS::detail {
namespace {

// Sum of counts (hs x ws, like omega) over the source patch centred at q.
inline int64_t patch_sum(const State& st, const int32_t* counts, uint32_t q) {
  const int32_t* o = counts + static_cast<size_t>(unpack_y(q) - st.lay.r) * st.ws + (unpack_x(q) - st.lay.r);
  return detail::patch_sum(o, static_cast<size_t>(st.ws), st.lay.p);
}

// Add v to counts over the source patch centred at q (atomically where other threads add too).
inline void patch_add(const State& st, int32_t* counts, uint32_t q, int v, bool atomic) {
  int32_t* o = counts + static_cast<size_t>(unpack_y(q) - st.lay.r) * st.ws + (unpack_x(q) - st.lay.r);
  detail::patch_add(o, static_cast<size_t>(st.ws), st.lay.p, v, atomic);
}

// Number of pixels two source patches centred at a and b share.
inline int overlap(const State& st, uint32_t a, uint32_t b) {
  const int dx = std::abs(unpack_x(a) - unpack_x(b)), dy = std::abs(unpack_y(a) - unpack_y(b));
  const int p = st.lay.p;
  return dx < p && dy < p ? (p - dx) * (p - dy) : 0;
}

inline int num_threads(int threads) { return threads > 0 ? threads : omp_get_max_threads(); }

}  // namespace

float patch_error(const State& st, int x, int y, uint32_t q, float bound) {
  const int len = st.patch_len();
  return ssd(st.src_patch(q), st.src_stride(), st.tgt_patch(x, y), st.tgt_stride(), st.lay.p, len, bound);
}

void compute_errors(State& st, int threads) {
  const float inf = std::numeric_limits<float>::infinity();
#pragma omp parallel for schedule(static) num_threads(num_threads(threads))
  for (int y = 0; y < st.ht; ++y)
    for (int x = 0; x < st.wt; ++x) {
      const size_t i = static_cast<size_t>(y) * st.wt + x;
      if (st.lv->mask[i]) st.err[i] = patch_error(st, x, y, st.nnf[i], inf);
    }
}

void compute_omega(State& st) {
  std::fill(st.omega.begin(), st.omega.end(), 0);
  const size_t n = static_cast<size_t>(st.ht) * st.wt;
  for (size_t i = 0; i < n; ++i)
    if (st.lv->mask[i]) patch_add(st, st.omega.data(), st.nnf[i], 1, false);
}

void patchmatch(State& st, const Params& prm, uint64_t seed, int threads) {
  const int wt = st.wt, ht = st.ht;
  const float lambda = prm.uniformity;
  const int p = st.lay.p, len = st.patch_len();
  const size_t s_stride = st.src_stride(), t_stride = st.tgt_stride();
  // energy of one unit of omega summed over a patch (errors are in feature units: data units
  // times feature_scale^2)
  const double fs2 = static_cast<double>(st.lay.feature_scale) * st.lay.feature_scale;
  const float occ_unit =
      lambda > 0 ? static_cast<float>(lambda * fs2 / (static_cast<double>(p) * p * st.omega_best)) : 0.f;
  const int qx_lo = st.qx_lo(), qx_hi = st.qx_hi(), qy_lo = st.qy_lo(), qy_hi = st.qy_hi();
  const int max_radius = first_search_radius(prm, st.hs, st.ws);
  const uint8_t* mask = st.lv->mask.data();

  if (lambda > 0 && !st.omega_valid) {
    compute_omega(st);  // from then on kept up to date at the end of every call
    st.omega_valid = true;
  }

  // Determinism: the rows are cut into fixed bands of kBand rows, and within one scan every band
  // reads only its own rows as they are being updated; the rows of the neighbouring bands (for
  // propagation and the convergence test) are read as they were at the end of the previous
  // scan, from `edge`. Likewise omega is frozen during a scan, plus the changes of the band's
  // own earlier pixels (band_delta, per thread and cleared between bands); all of the scan's
  // changes are added to omega at its end. So the result depends on the seed only, not on the
  // thread count or scheduling. (Measured against reading omega and neighbours' matches as
  // other threads update them: PSNR against the exact warp within +-0.2 dB at 256/512/1024,
  // mean error +1.5%; the band size does not matter. Without band_delta: mean error +4%.)
  constexpr int kBand = 16;
  const int nbands = (ht + kBand - 1) / kBand;
  const size_t n_px = static_cast<size_t>(ht) * wt;

  // stamp[i] = 1 + the scan in which pixel i last changed its match in this call (0: not yet).
  // After one forward and one backward scan, a pixel whose match and whose 4 neighbours'
  // matches did not change during the last two scans is converged for this call: propagation
  // can bring it nothing new and the random search of the last two scans found nothing.
  // (Measured at 512^2: 35% less time, same PSNR, mean error +0.1%.)
  // A warm-started field (the previous frame's, moved along the flow) is mostly right already:
  // there the test starts after the first scan, with that scan's changes alone (in a static
  // background most pixels then skip the second scan; measured on benchmarks/bench_quality.py's
  // five clips at the propagation's 2 scans: synthesis 11-26% less CPU, PSNR within 0.01 dB,
  // warp error within 1%).
  const int first_test = st.warm_start ? 1 : 2;
  std::vector<int32_t> stamp(n_px, 0);
  // edge[parity][band][top row, bottom row][x]: a band's outer rows as published at the end of
  // a scan of that parity (parity 1 initially: "scan -1")
  const size_t edge_row = static_cast<size_t>(wt), edge_band = 2 * edge_row, edge_par = nbands * edge_band;
  std::vector<uint32_t> edge_nnf(2 * edge_par);
  std::vector<int32_t> edge_stamp(2 * edge_par, 0);
  auto publish = [&](int par, int band) {
    const int y0 = band * kBand, y1 = std::min(ht, y0 + kBand);
    const size_t e = par * edge_par + band * edge_band;
    std::copy_n(&st.nnf[static_cast<size_t>(y0) * wt], wt, &edge_nnf[e]);
    std::copy_n(&st.nnf[static_cast<size_t>(y1 - 1) * wt], wt, &edge_nnf[e + edge_row]);
    std::copy_n(&stamp[static_cast<size_t>(y0) * wt], wt, &edge_stamp[e]);
    std::copy_n(&stamp[static_cast<size_t>(y1 - 1) * wt], wt, &edge_stamp[e + edge_row]);
  };

  // Threads take bands t, t + nteam, ... (interleaved, so that converged and busy regions spread
  // evenly). Small workloads run on one thread: each barrier can cost a scheduler time slice on
  // a loaded machine.
  size_t work = 0;
  for (uint8_t a : st.active) work += a;
  const int team = work >= 16384 ? std::min(num_threads(threads), nbands) : 1;
  // omega stays as it is during a scan: when many pixels are searched, its sums over every source
  // patch are computed once per scan (separable box sums) instead of once per candidate. (Integer
  // sums: the same values either way.)
  const size_t n_src = static_cast<size_t>(st.hs) * st.ws;
  const bool box_sums = lambda > 0 && work * 4 >= n_src;
  std::vector<int64_t> omega_box(box_sums ? n_src : 0);

  int out_of_memory = 0;
#pragma omp parallel num_threads(team)
  {
    const int t = omp_get_thread_num(), nteam = omp_get_num_threads();

    // This thread's buffers. An exception must not leave an OpenMP region, and a thread that gave
    // up alone would leave the others waiting at a barrier: a failed allocation is noted, and
    // after the next barrier every thread skips the work alike.
    std::vector<std::pair<uint32_t, uint32_t>> changes;  // (old, new) matches of this scan
    // the changes of the band being scanned, which its later pixels see at once (zero between bands)
    std::vector<int32_t> band_delta;
    std::vector<int64_t> column_sums;  // (box_sums) one row of p-row column sums of omega
    try {
      if (box_sums) column_sums.resize(st.ws);
      if (lambda > 0) {
        size_t mine = 0;  // a scan changes each of this thread's pixels at most once
        for (int b = t; b < nbands; b += nteam) mine += static_cast<size_t>(std::min(ht, (b + 1) * kBand) - b * kBand) * wt;
        changes.reserve(mine);
        band_delta.assign(static_cast<size_t>(st.hs) * st.ws, 0);
      }
    } catch (const std::bad_alloc&) {
#pragma omp atomic write
      out_of_memory = 1;
    }

    // the style changed since the last call: refresh the errors of the pixels to search
    const float inf = std::numeric_limits<float>::infinity();
    for (int b = t; b < nbands; b += nteam) {
      publish(1, b);
      const int y0 = b * kBand, y1 = std::min(ht, y0 + kBand);
      for (int y = y0; y < y1; ++y)
        for (int x = 0; x < wt; ++x) {
          const size_t i = static_cast<size_t>(y) * wt + x;
          if (st.active[i]) st.err[i] = patch_error(st, x, y, st.nnf[i], inf);
        }
    }
#pragma omp barrier
    int give_up;
#pragma omp atomic read
    give_up = out_of_memory;

    uint32_t next_cands[32], cands[32];  // random candidates, drawn one pixel ahead
    for (int it = 0; it < (give_up ? 0 : prm.patchmatch_iters); ++it) {
      if (box_sums) {
        // omega_box[q] = the sum of omega over the source patch centred at q (valid centres only)
        const int r = st.lay.r, ws = st.ws;
#pragma omp for schedule(static)
        for (int qy = r; qy < st.hs - r; ++qy) {
          std::fill(column_sums.begin(), column_sums.end(), 0);
          for (int j = -r; j <= r; ++j) {
            const int32_t* row = &st.omega[static_cast<size_t>(qy + j) * ws];
            for (int x = 0; x < ws; ++x) column_sums[x] += row[x];
          }
          int64_t run = 0;
          for (int x = 0; x < p - 1; ++x) run += column_sums[x];
          int64_t* out = &omega_box[static_cast<size_t>(qy) * ws];
          for (int qx = r; qx < ws - r; ++qx) {
            run += column_sums[qx + r];
            out[qx] = run;
            run -= column_sums[qx - r];
          }
        }
      }
      const bool forward = (it % 2) == 0;
      const int step = forward ? 1 : -1;
      const int recent = std::max(it - 1, 1);  // stamps >= this changed in one of the last two scans
      const int prev_par = (it + 1) & 1;

      for (int b = t; b < nbands; b += nteam) {
        const int y0 = b * kBand, y1 = std::min(ht, y0 + kBand);
        const size_t band_changes = changes.size();
        // row yy of the NNF / stamps as this band sees it (yy in [y0 - 1, y1])
        auto nnf_row = [&](int yy) -> const uint32_t* {
          if (yy < y0) return &edge_nnf[prev_par * edge_par + (b - 1) * edge_band + edge_row];
          if (yy >= y1) return &edge_nnf[prev_par * edge_par + (b + 1) * edge_band];
          return &st.nnf[static_cast<size_t>(yy) * wt];
        };
        auto stamp_row = [&](int yy) -> const int32_t* {
          if (yy < y0) return &edge_stamp[prev_par * edge_par + (b - 1) * edge_band + edge_row];
          if (yy >= y1) return &edge_stamp[prev_par * edge_par + (b + 1) * edge_band];
          return &stamp[static_cast<size_t>(yy) * wt];
        };
        for (int yy = 0; yy < y1 - y0; ++yy) {
          const int y = forward ? y0 + yy : y1 - 1 - yy;
          const int32_t* st_up = y > 0 ? stamp_row(y - 1) : nullptr;
          const int32_t* st_dn = y + 1 < ht ? stamp_row(y + 1) : nullptr;
          const int32_t* st_row = &stamp[static_cast<size_t>(y) * wt];
          auto live = [&](int x) {
            if (it < first_test) return true;
            return st_row[x] >= recent || (x > 0 && st_row[x - 1] >= recent) ||
                   (x + 1 < wt && st_row[x + 1] >= recent) || (st_up && st_up[x] >= recent) ||
                   (st_dn && st_dn[x] >= recent);
          };
          // the row propagation comes from (above in a forward scan, below in a backward one)
          const int yn = y - step;
          const uint32_t* prop_row = yn >= 0 && yn < ht ? nnf_row(yn) : nullptr;
          const uint8_t* prop_mask = prop_row ? mask + static_cast<size_t>(yn) * wt : nullptr;

          Rng rng(seed, static_cast<uint64_t>(it), kSearchStream, static_cast<uint64_t>(y));
          // Random search candidates of pixel x (radii halving from the image size down to 1,
          // around its match before propagation) are drawn and prefetched while the previous
          // pixel is processed: they are scattered over the source, so each is a cache miss.
          int n_next = 0;
          auto draw = [&](int x) {
            n_next = 0;
            const size_t i = static_cast<size_t>(y) * wt + x;
            if (!st.active[i] || !live(x)) return;
            const uint32_t c = st.nnf[i];
            const int cx = unpack_x(c), cy = unpack_y(c);
            for (int rad = max_radius; rad >= 1; rad /= 2) {
              const int qx = std::clamp(cx + rng.range(-rad, rad), qx_lo, qx_hi);
              const int qy = std::clamp(cy + rng.range(-rad, rad), qy_lo, qy_hi);
              next_cands[n_next++] = pack(qx, qy);
              // (the nearest candidates lie next to the current match, already in cache)
              if (rad >= 8) prefetch_patch(st.src_patch(pack(qx, qy)), s_stride, len, 1);
            }
          };
          draw(forward ? 0 : wt - 1);

          for (int xx = 0; xx < wt; ++xx) {
            const int x = forward ? xx : wt - 1 - xx;
            const size_t i = static_cast<size_t>(y) * wt + x;
            if (!st.active[i] || !live(x)) {
              if (xx + 1 < wt) draw(x + step);
              continue;
            }
            if (n_next == 0) draw(x);  // became live after the look-ahead (a neighbour changed)
            const int n_cands = n_next;
            std::copy_n(next_cands, n_cands, cands);
            if (xx + 1 < wt) draw(x + step);

            const uint32_t orig = st.nnf[i];
            uint32_t cur = orig;
            float cur_e = st.err[i];
            // occupancy of a source patch without this pixel's own contribution (omega and
            // band_delta count its match at the scan's start)
            // (band_delta is all zeros until the band changes a match)
            const bool band_changed = changes.size() > band_changes;
            auto occupancy = [&](uint32_t q) {
              const int64_t o = (box_sums ? omega_box[static_cast<size_t>(unpack_y(q)) * st.ws + unpack_x(q)]
                                          : patch_sum(st, st.omega.data(), q)) +
                                (band_changed ? patch_sum(st, band_delta.data(), q) : 0);
              return occ_unit * static_cast<float>(o - overlap(st, orig, q));
            };
            float best = cur_e + (lambda > 0 ? occupancy(cur) : 0.f);
            const float* tp = st.tgt_patch(x, y);
            // A candidate wins when E + lambda * occupancy is lower; E alone is stored.
            auto attempt = [&](uint32_t cand) {
              if (cand == cur) return;
              const float e = ssd(st.src_patch(cand), s_stride, tp, t_stride, p, len, best);
              if (e >= best) return;  // occupancy >= 0: no need to look at it
              const float occ = lambda > 0 ? occupancy(cand) : 0.f;
              if (e + occ >= best) return;
              cur = cand, cur_e = e, best = e + occ;
            };

            // propagation from the neighbours already visited in this scan direction
            if (x - step >= 0 && x - step < wt && mask[i - step]) {
              const uint32_t n = st.nnf[i - step];
              const int qx = unpack_x(n) + step;
              if (qx >= qx_lo && qx <= qx_hi) attempt(pack(qx, unpack_y(n)));
            }
            if (prop_row && prop_mask[x]) {
              const uint32_t n = prop_row[x];
              const int qy = unpack_y(n) + step;
              if (qy >= qy_lo && qy <= qy_hi) attempt(pack(unpack_x(n), qy));
            }
            for (int k = 0; k < n_cands; ++k) attempt(cands[k]);

            if (cur != orig) {
              st.nnf[i] = cur;
              st.moved[i] = 1;
              stamp[i] = it + 1;
              if (lambda > 0) {
                changes.emplace_back(orig, cur);
                patch_add(st, band_delta.data(), orig, -1, false);
                patch_add(st, band_delta.data(), cur, +1, false);
              }
            }
            st.err[i] = cur_e;
          }
        }
        publish(it & 1, b);
        for (size_t k = band_changes; k < changes.size(); ++k) {  // back to zero for the next band
          patch_add(st, band_delta.data(), changes[k].first, +1, false);
          patch_add(st, band_delta.data(), changes[k].second, -1, false);
        }
      }
#pragma omp barrier
      if (lambda > 0) {
        // omega follows the matches that changed in this scan (integer sums: the order of the
        // updates does not matter)
        for (const auto& [from, to] : changes) {
          patch_add(st, st.omega.data(), from, -1, nteam > 1);
          patch_add(st, st.omega.data(), to, +1, nteam > 1);
        }
        changes.clear();
#pragma omp barrier
      }
    }
  }
  if (out_of_memory) throw std::bad_alloc();
}

}  // namespace rerender::synthesis::RR_SIMD_NS::detail
RR_SIMD_END
