// Host emulation of the parts of CUDA (and CUB) that csrc/cuda/*.cu use, so that they
// compile as plain C++ (this directory comes first on the include path and shadows the real
// <cuda_runtime.h>). Every launch (RR_LAUNCH) runs serially as one block of one thread, whose
// grid-stride loop then visits every item in order; atomics are plain updates. This checks the
// kernels' indexing and logic, not concurrency. Used by tests/test_cuda.py.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#define __global__
#define __device__
#define __host__
#define __shared__ static
struct dim3 { unsigned x, y, z; };
static dim3 blockIdx{0, 0, 0}, threadIdx{0, 0, 0}, blockDim{1, 1, 1}, gridDim{1, 1, 1};
typedef int cudaError_t;
enum { cudaSuccess = 0 };
inline const char* cudaGetErrorString(int) { return "emulated"; }
inline cudaError_t cudaGetLastError() { return 0; }
inline cudaError_t cudaMemset(void* p, int v, size_t n) { std::memset(p, v, n); return 0; }
struct int2 { int x, y; };
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int atomicAdd(int* p, int v) { int o = *p; *p += v; return o; }
inline unsigned atomicAdd(unsigned* p, unsigned v) { unsigned o = *p; *p += v; return o; }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) { auto o = *p; *p += v; return o; }
inline unsigned long long atomicMin(unsigned long long* p, unsigned long long v) { auto o = *p; *p = std::min(o, v); return o; }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
inline void __syncthreads() {}
inline double normcdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }
namespace rerender { double normal_quantile(double p); }  // the CPU core's Phi^-1 stands in
inline double normcdfinv(double p) { return rerender::normal_quantile(p); }
using std::max;
using std::min;
#define RR_LAUNCH(kernel, n, ...) kernel(__VA_ARGS__)
