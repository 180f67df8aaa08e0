// Guided patch-based synthesis on the GPU: the CPU core's algorithm (core/synthesis.h) with the
// PatchMatch made parallel as in EbSynth's CUDA backend: jump-flood propagation (distances 4, 2,
// 1) and random search over all target pixels at once, instead of sequential scans. Same
// features, pyramid, error, uniformity term, vote and stop threshold as the CPU.
#pragma once
#include <cstdint>
#include <vector>

#include "core/synthesis.h"

namespace rerender::cuda {

// Where cuda::synthesize writes its results: device buffers of the current device (the
// caller's, e.g. a CudaArray handed to Python, so results need no host round trip).
struct Outputs {
  void* image;      // H_t x W_t x C_style: float, or uint8 (rounded half away from zero, clamped
                    // to 0..255: what the CPU binding returns) when image_u8
  bool image_u8;
  int32_t* nnf;     // H_t x W_t x 2, (x, y) source patch centres; (-1, -1) off the mask
  float* error;     // H_t x W_t, plain patch error E (no uniformity term); 0 off the mask
};

// The contract of synthesis::synthesize, with the results written to `out` (off the target mask:
// image 0, nnf (-1, -1), error 0). The inputs may lie in host memory or in device memory of the
// current device (read in place, e.g. a torch CUDA tensor; told apart by cuda::pointer_device);
// params.pyramid_levels must already be resolved (>= 1, e.g. by synthesis::auto_pyramid_levels,
// or 1 for a warm start); params.threads is ignored. Returns once the results are written.
// Throws cuda::Error on CUDA failures.
void synthesize(const synthesis::Plane& style, const std::vector<synthesis::Guide>& guides, int ht, int wt,
                const int32_t* init_nnf, const uint8_t* target_mask, const synthesis::Params& params,
                const Outputs& out);

}  // namespace rerender::cuda
