// Backward warping of interleaved images by a dense flow field (CPU).
#pragma once
#include <cstdint>

#include "core/image.h"
#include "core/sampling.h"

namespace rerender {

enum class WarpMode { Bilinear, Nearest };

// out(p) = src(p + flow(p)), border clamp. `flow` is h x w x 2 (dx, dy) on the output grid and
// must have src's size and finite values (the bindings check). `valid` (optional, h * w bytes)
// receives 1 where the sample position lies inside the frame, 0 where it was clamped.
// uint8 results are rounded to nearest. threads = 0: OpenMP default.
void warp(ImageView<const uint8_t> src, ImageView<const float> flow, WarpMode mode,
          ImageView<uint8_t> out, uint8_t* valid, int threads);
void warp(ImageView<const float> src, ImageView<const float> flow, WarpMode mode,
          ImageView<float> out, uint8_t* valid, int threads);

}  // namespace rerender
