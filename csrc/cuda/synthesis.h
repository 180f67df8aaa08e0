// Guided patch-based synthesis on the GPU: the CPU core's algorithm (core/synthesis.h) with the
// PatchMatch made parallel as in EbSynth's CUDA backend: jump-flood propagation (distances 4, 2,
// 1) and random search over all target pixels at once, instead of sequential scans. Same
// features, pyramid, error, uniformity term, vote and stop threshold as the CPU.
#pragma once
#include <cstdint>
#include <vector>

#include "core/synthesis.h"

namespace rerender::cuda {

// Same contract as synthesis::synthesize (result on the host), except that the inputs may lie in
// host memory or in device memory of the current device (read in place, e.g. a torch CUDA
// tensor; told apart by cuda::pointer_device), that params.pyramid_levels must already be
// resolved (>= 1, e.g. by synthesis::auto_pyramid_levels, or 1 for a warm start) and that
// params.threads is ignored.
// Throws cuda::Error on CUDA failures.
synthesis::Result synthesize(const synthesis::Plane& style, const std::vector<synthesis::Guide>& guides, int ht,
                             int wt, const int32_t* init_nnf, const uint8_t* target_mask,
                             const synthesis::Params& params);

}  // namespace rerender::cuda
