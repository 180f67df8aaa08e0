// CUDA kernels of the native ops (warp, occlusion, histogram-preserving blend, min-error
// combination). All pointers are device pointers on the current device, images interleaved
// H x W x C; the semantics are those of the CPU functions in csrc/core (shared per-pixel code in
// core/sampling.h and core/histblend_math.h). Calls are synchronous; errors throw cuda::Error.
#pragma once
#include <cstddef>
#include <cstdint>

namespace rerender::cuda {

void warp(const uint8_t* src, const float* flow, int h, int w, int c, bool nearest, uint8_t* out,
          uint8_t* valid);
void warp(const float* src, const float* flow, int h, int w, int c, bool nearest, float* out,
          uint8_t* valid);

void occlusion(const float* forward, const float* backward, int h, int w, float alpha1, float alpha2,
               uint8_t* mask);

// Per-channel 256-bin histograms of an n-pixel, c-channel uint8 image, copied to host_hist
// (c * 256 counts, channel-major).
void byte_histograms(const uint8_t* img, size_t n, int c, uint64_t* host_hist);

// The uint8 blend given host tables (c * 256 doubles each, channel-major) of T_a, T_b
// (to_gauss) and the inverse tables (upper) of a, b or the reference. weight_map may be null
// (then weight_scalar). has_reference selects the inverse through ref_upper.
struct ByteTables {
  const double* a_to_gauss;
  const double* b_to_gauss;
  const double* a_upper;
  const double* b_upper;
  const double* ref_upper;  // null without reference
};
void blend_bytes(const uint8_t* a, const uint8_t* b, const float* weight_map, float weight_scalar,
                 size_t n, int c, const ByteTables& host_tables, uint8_t* out);

// The float32 blend, all on the device (sorting by CUB). ref may be null (n_ref ignored).
void blend_floats(const float* a, const float* b, const float* weight_map, float weight_scalar,
                  size_t n, int c, const float* ref, size_t n_ref, float* out);

template <typename T>
void min_error_combine(const T* a, const T* b, const float* error_a, const float* error_b, size_t n,
                       int c, T* out, uint8_t* take_a);

}  // namespace rerender::cuda
