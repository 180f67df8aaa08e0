// Forward-backward consistency check for optical flow (UnFlow; docs/method.md section 2).
#pragma once
#include <cstdint>

#include "core/image.h"

namespace rerender {

// mask(x) = 1 (occluded) where x + f(x) leaves the frame [0, w-1] x [0, h-1], or where
//   |f(x) + b(x + f(x))| > alpha1 (|f(x)| + |b(x + f(x))|) + alpha2   (plain Euclidean norms),
// with f = `forward` (a -> b, on a's grid) and b = `backward` (b -> a, on b's grid) sampled
// bilinearly. Both flows are h x w x 2, same size, finite. `mask` holds h * w bytes.
void occlusion(ImageView<const float> forward, ImageView<const float> backward, float alpha1,
               float alpha2, uint8_t* mask, int threads);

}  // namespace rerender
