// Histogram-preserving blend and min-error combination on the GPU. uint8 data use the CPU's
// 256-entry tables (built on the host from device histograms); float32 data are ranked by a CUB
// radix sort per channel. Per-pixel arithmetic is shared with the CPU (core/histblend_math.h).
#include <cub/device/device_radix_sort.cuh>

#include <vector>

#include "core/histblend_math.h"
#include "core/sampling.h"  // round_u8
#include "cuda/check.cuh"
#include "cuda/ops.h"

namespace rerender::cuda {
namespace {

// ---- uint8 -----------------------------------------------------------------------------------

__global__ void histogram_kernel(const uint8_t* img, size_t n, int c, int ch, unsigned long long* hist) {
  __shared__ unsigned int local[256];
  for (int v = threadIdx.x; v < 256; v += blockDim.x) local[v] = 0;
  __syncthreads();
  for (size_t i = global_index(); i < n; i += grid_stride()) atomicAdd(&local[img[i * c + ch]], 1u);
  __syncthreads();
  for (int v = threadIdx.x; v < 256; v += blockDim.x)
    if (local[v]) atomicAdd(&hist[v], static_cast<unsigned long long>(local[v]));
}

// Device copies of the tables, channel-major, 256 doubles per channel each.
struct DeviceByteTables {
  const double *a_to_gauss, *b_to_gauss, *a_upper, *b_upper, *ref_upper;
};

__global__ void blend_bytes_kernel(const uint8_t* a, const uint8_t* b, const float* weight_map,
                                   float weight_scalar, size_t n, int c, DeviceByteTables t, uint8_t* out) {
  for (size_t i = global_index(); i < n; i += grid_stride()) {
    const double wa = weight_map ? weight_map[i] : weight_scalar;
    for (int ch = 0; ch < c; ++ch) {
      const size_t k = i * c + ch;
      const double g = blend_gauss(t.a_to_gauss[ch * 256 + a[k]], t.b_to_gauss[ch * 256 + b[k]], wa);
      if (t.ref_upper) {
        out[k] = static_cast<uint8_t>(byte_inverse(t.ref_upper + ch * 256, g));
      } else {
        const double v = wa * byte_inverse(t.a_upper + ch * 256, g) + (1.0 - wa) * byte_inverse(t.b_upper + ch * 256, g);
        out[k] = round_u8(static_cast<float>(v));
      }
    }
  }
}

// ---- float32 ---------------------------------------------------------------------------------

__global__ void extract_channel_kernel(const float* img, size_t n, int c, int ch, float* keys, uint32_t* index) {
  for (size_t i = global_index(); i < n; i += grid_stride()) {
    keys[i] = img[i * c + ch];
    index[i] = static_cast<uint32_t>(i);
  }
}

// First position in ascending `sorted` whose value is not < v (resp. is > v).
__device__ size_t lower_bound(const float* sorted, size_t n, float v) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (sorted[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
__device__ size_t upper_bound(const float* sorted, size_t n, float v) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (v < sorted[mid]) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

// T(value) for every pixel of one channel: its tie group's mid-rank -> Phi^-1.
__global__ void gauss_kernel(const float* sorted, const uint32_t* order, size_t n, float* gauss) {
  for (size_t r = global_index(); r < n; r += grid_stride()) {
    const float v = sorted[r];
    const size_t lo = lower_bound(sorted, n, v), hi = upper_bound(sorted, n, v) - 1;
    gauss[order[r]] = static_cast<float>(normcdfinv(mid_rank_probability(lo, hi, n)));
  }
}

__global__ void blend_floats_kernel(const float* a, const float* b, const float* weight_map, float weight_scalar,
                                    size_t n, int c, const float* a_gauss, const float* b_gauss,
                                    const float* a_sorted, const float* b_sorted, const float* ref_sorted,
                                    size_t n_ref, float* out) {
  for (size_t i = global_index(); i < n; i += grid_stride()) {
    const double wa = weight_map ? weight_map[i] : weight_scalar;
    for (int ch = 0; ch < c; ++ch) {
      const size_t k = i * c + ch;
      if (!ref_sorted && (wa == 1.0 || wa == 0.0)) {  // T^-1(T(x)) = x, as on the CPU
        out[k] = wa == 1.0 ? a[k] : b[k];
        continue;
      }
      const double g = blend_gauss(a_gauss[ch * n + i], b_gauss[ch * n + i], wa);
      const double u = normcdf(g);
      out[k] = ref_sorted ? sorted_quantile(ref_sorted + ch * n_ref, n_ref, u)
                          : static_cast<float>(wa * sorted_quantile(a_sorted + ch * n, n, u) +
                                               (1.0 - wa) * sorted_quantile(b_sorted + ch * n, n, u));
    }
  }
}

// Sorts every channel of an n-pixel image: sorted values (c * n) and, optionally, T per pixel.
class ChannelSorter {
 public:
  explicit ChannelSorter(size_t max_n)
      : keys_(max_n * sizeof(float)), index_(max_n * sizeof(uint32_t)), order_(max_n * sizeof(uint32_t)) {
    size_t bytes = 0;
    check(cub::DeviceRadixSort::SortPairs(nullptr, bytes, keys_.as<float>(), keys_.as<float>(),
                                          index_.as<uint32_t>(), order_.as<uint32_t>(), static_cast<int>(max_n)),
          "cub::DeviceRadixSort (temp size)");
    temp_ = Buffer(bytes > 0 ? bytes : 1);
  }

  void sort(const float* img, size_t n, int c, float* sorted, float* gauss) {
    for (int ch = 0; ch < c; ++ch) {
      RR_LAUNCH(extract_channel_kernel, n, img, n, c, ch, keys_.as<float>(), index_.as<uint32_t>());
      size_t bytes = temp_.bytes();
      check(cub::DeviceRadixSort::SortPairs(temp_.get(), bytes, keys_.as<float>(), sorted + ch * n,
                                            index_.as<uint32_t>(), order_.as<uint32_t>(), static_cast<int>(n)),
            "cub::DeviceRadixSort");
      if (gauss) {
        RR_LAUNCH(gauss_kernel, n, sorted + ch * n, order_.as<uint32_t>(), n, gauss + ch * n);
      }
    }
  }

 private:
  Buffer keys_, index_, order_, temp_;
};

template <typename T>
__global__ void combine_kernel(const T* a, const T* b, const float* ea, const float* eb, size_t n, int c, T* out,
                               uint8_t* take_a) {
  for (size_t i = global_index(); i < n; i += grid_stride()) {
    const bool pick_a = ea[i] <= eb[i];
    take_a[i] = pick_a;
    const T* src = (pick_a ? a : b) + i * c;
    for (int ch = 0; ch < c; ++ch) out[i * c + ch] = src[ch];
  }
}

}  // namespace

void byte_histograms(const uint8_t* img, size_t n, int c, uint64_t* host_hist) {
  Buffer hist(static_cast<size_t>(c) * 256 * sizeof(unsigned long long));
  check(cudaMemset(hist.get(), 0, hist.bytes()), "cudaMemset");
  // at most 1024 blocks (each merges its shared counts into the global ones): fewer global atomics
  const size_t launch_items = n < 1024 * static_cast<size_t>(kThreads) ? n : 1024 * static_cast<size_t>(kThreads);
  for (int ch = 0; ch < c; ++ch)
    RR_LAUNCH(histogram_kernel, launch_items, img, n, c, ch, hist.as<unsigned long long>() + ch * 256);
  static_assert(sizeof(unsigned long long) == sizeof(uint64_t), "64-bit counts");
  copy_to_host(host_hist, hist.get(), hist.bytes());
}

void blend_bytes(const uint8_t* a, const uint8_t* b, const float* weight_map, float weight_scalar, size_t n, int c,
                 const ByteTables& host, uint8_t* out) {
  const size_t table = static_cast<size_t>(c) * 256;
  Buffer tables(5 * table * sizeof(double));
  double* d = tables.as<double>();
  const double* sources[5] = {host.a_to_gauss, host.b_to_gauss, host.a_upper, host.b_upper, host.ref_upper};
  for (int t = 0; t < 5; ++t)
    if (sources[t]) copy_to_device(d + t * table, sources[t], table * sizeof(double));
  const DeviceByteTables dt{d, d + table, d + 2 * table, d + 3 * table, host.ref_upper ? d + 4 * table : nullptr};
  RR_LAUNCH(blend_bytes_kernel, n, a, b, weight_map, weight_scalar, n, c, dt, out);
  synchronize();
}

void blend_floats(const float* a, const float* b, const float* weight_map, float weight_scalar, size_t n, int c,
                  const float* ref, size_t n_ref, float* out) {
  const size_t cn = static_cast<size_t>(c) * n;
  Buffer a_sorted(cn * sizeof(float)), b_sorted(cn * sizeof(float));
  Buffer a_gauss(cn * sizeof(float)), b_gauss(cn * sizeof(float));
  Buffer ref_sorted(ref ? static_cast<size_t>(c) * n_ref * sizeof(float) : 0);
  ChannelSorter sorter(ref && n_ref > n ? n_ref : n);
  sorter.sort(a, n, c, a_sorted.as<float>(), a_gauss.as<float>());
  sorter.sort(b, n, c, b_sorted.as<float>(), b_gauss.as<float>());
  if (ref) sorter.sort(ref, n_ref, c, ref_sorted.as<float>(), nullptr);
  RR_LAUNCH(blend_floats_kernel, n, a, b, weight_map, weight_scalar, n, c, a_gauss.as<float>(), b_gauss.as<float>(),
            a_sorted.as<float>(), b_sorted.as<float>(), ref ? ref_sorted.as<float>() : nullptr, n_ref, out);
  synchronize();
}

template <typename T>
void min_error_combine(const T* a, const T* b, const float* error_a, const float* error_b, size_t n, int c, T* out,
                       uint8_t* take_a) {
  RR_LAUNCH(combine_kernel<T>, n, a, b, error_a, error_b, n, c, out, take_a);
  synchronize();
}

template void min_error_combine<uint8_t>(const uint8_t*, const uint8_t*, const float*, const float*, size_t, int,
                                         uint8_t*, uint8_t*);
template void min_error_combine<float>(const float*, const float*, const float*, const float*, size_t, int, float*,
                                       uint8_t*);

}  // namespace rerender::cuda
