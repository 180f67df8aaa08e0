// Error checking and launch geometry shared by the .cu files.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "cuda/runtime.h"

namespace rerender::cuda {

inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    cudaGetLastError();  // clear a non-sticky error so later calls start clean
    throw Error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(status));
  }
}

// After a kernel launch: configuration errors now, execution errors at the next synchronisation.
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

constexpr int kThreads = 256;

inline unsigned blocks_for(size_t n) {
  const size_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 65535u * 16u ? (b > 0 ? b : 1) : 65535u * 16u);  // grid-stride beyond
}

// Launch `kernel` with enough blocks for n items (its grid-stride loop covers the rest) and
// check the launch. (A host emulation of the kernels for logic checks defines its own.)
#ifndef RR_LAUNCH
#define RR_LAUNCH(kernel, n, ...)                                                                     \
  do {                                                                                              \
    kernel<<<::rerender::cuda::blocks_for(n), ::rerender::cuda::kThreads>>>(__VA_ARGS__);            \
    ::rerender::cuda::check_launch(#kernel);                                                        \
  } while (0)
#endif

// Grid-stride loop index helpers.
__device__ inline size_t global_index() { return static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ inline size_t grid_stride() { return static_cast<size_t>(gridDim.x) * blockDim.x; }

}  // namespace rerender::cuda
