// The synthesis kernels of each SIMD variant (csrc/core/synthesis_kernels.h), compiled here by
// kernels_<variant>.cpp exactly as the core compiles them, each in its own namespace, so that
// the tests can run every variant this CPU supports side by side.
#pragma once
#include <cstddef>
#include <cstdint>

struct SsdArgs {
  const uint16_t* s;
  size_t s_stride;
  const float* t;
  size_t t_stride;
  int rows, len;
  float bound;
};

struct KernelSet {
  const char* name;
  float (*ssd)(const SsdArgs&);
  float (*ssd_portable)(const SsdArgs&);
  int64_t (*patch_sum)(const int32_t* o, size_t ws, int p);
  void (*patch_add)(int32_t* o, size_t ws, int p, int v);
  uint16_t (*to_feat)(float);
  float (*from_feat)(uint16_t);
};

extern const KernelSet kernels_baseline;
extern const KernelSet kernels_avx2;          // runs on AVX2 + FMA + F16C CPUs only
extern const KernelSet kernels_avx512_simde;  // (test_avx512_emulated only) AVX-512 code on SIMDe
