"""Guide images for video propagation (docs/method.md, section 3).

Each guide is a pair (source guide on the key frame, target guide on frame i) that tells the
synthesis which key-frame patch belongs where:
- colour: the input frames themselves;
- edge: a signed Laplacian of the input (structure, independent of shading offsets);
- positional: the key frame's coordinate map advected along the consecutive flows to frame i
  (keeps patches near where they came from; occluded pixels take the nearest valid value);
- temporal: the previously synthesised frame warped to frame i (source: the key's style itself).
After the synthesis, :func:`transfer_residual` may add to a candidate what its patches cannot know: how
frame i's input differs from the key's input at the patches' sources, mapped into style by the
key's local linear relation between input and style (:func:`local_slopes`).
All guides are uint8 so that their squared differences live on the same scale as the style's and the
reference weights carry over.
"""
from __future__ import annotations

import cv2
import numpy as np

# Laplacian of a sigma-1 Gaussian responds with a few tens of grey levels on typical texture; doubling
# it and centring on 128 uses most of the uint8 range while keeping both edge polarities apart.
_EDGE_SIGMA = 1.0
_EDGE_GAIN = 2.0


def _check_frame(frame: np.ndarray, name: str) -> None:
    if (not isinstance(frame, np.ndarray) or frame.dtype not in (np.uint8, np.float32) or frame.ndim != 3
            or frame.shape[2] != 3):
        shape = getattr(frame, "shape", None)
        dtype = getattr(frame, "dtype", type(frame).__name__)
        raise ValueError(f"{name}: expected a uint8 or float32 H x W x 3 RGB frame, got shape {shape} dtype {dtype}")


def edge_guide(frame: np.ndarray) -> np.ndarray:
    """Signed Laplacian-of-Gaussian of the grey frame centred on 128, H x W x 1: uint8 for uint8
    frames; float32 (unrounded, unclipped) for float frames of the working format."""
    _check_frame(frame, "frame")
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    grey = cv2.GaussianBlur(grey, (0, 0), _EDGE_SIGMA)
    lap = cv2.Laplacian(grey, cv2.CV_32F, ksize=3)
    if frame.dtype == np.float32:
        return np.ascontiguousarray((128.0 - _EDGE_GAIN * lap)[:, :, None])
    out = np.clip(128.0 - _EDGE_GAIN * lap, 0, 255) + 0.5
    return out.astype(np.uint8)[:, :, None]


def coordinate_map(height: int, width: int) -> np.ndarray:
    """float32 H x W x 2 map holding each pixel's own (x, y): the key frame's positional map."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.ascontiguousarray(np.stack([xs, ys], axis=-1))


def fill_occluded(image: np.ndarray, occluded: np.ndarray) -> np.ndarray:
    """Replace occluded pixels (mask != 0) by the value of the nearest non-occluded pixel.

    Uses one exact distance transform with labels (linear time), so it costs milliseconds even for
    large disocclusions. An all-occluded mask leaves the image unchanged.
    """
    occ = np.asarray(occluded) != 0
    if occ.shape != image.shape[:2]:
        raise ValueError(f"occluded: mask shape {occ.shape} does not match image shape {image.shape[:2]}")
    if not occ.any() or occ.all():
        return image.copy()
    # distanceTransformWithLabels measures from every non-zero pixel to the nearest zero pixel and
    # labels it with that zero pixel's own label (DIST_LABEL_PIXEL: one label per zero pixel).
    _, labels = cv2.distanceTransformWithLabels(occ.astype(np.uint8), cv2.DIST_L2, 5,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    labels = labels.ravel()
    valid_flat = np.flatnonzero(~occ)
    lookup = np.zeros(valid_flat.size + 1, dtype=np.int64)
    lookup[labels[valid_flat]] = valid_flat
    # a valid pixel is its own nearest: only the occluded ones (usually a few percent) are looked up
    occluded_flat = np.flatnonzero(occ)
    out = np.array(image, order="C", copy=True)
    flat = out.reshape(-1, *image.shape[2:])
    flat[occluded_flat] = flat[lookup[labels[occluded_flat]]]  # (sources are valid pixels: unchanged)
    return out


def advect_positions(prev_positions: np.ndarray, flow_to_prev: np.ndarray,
                     occluded: np.ndarray) -> np.ndarray:
    """Carry the positional map of the previous frame to this one.

    ``flow_to_prev`` is the flow from this frame to the previous one (on this frame's grid), so
    ``out(x) = prev(x + flow(x))``; pixels occluded in the previous frame get the nearest valid value.
    """
    from .warping import warp

    moved = warp(np.ascontiguousarray(prev_positions, dtype=np.float32), flow_to_prev, mode="bilinear")
    return fill_occluded(moved, occluded)


def positional_guide(positions: np.ndarray) -> np.ndarray:
    """uint8 H x W x 2 image of a positional map: x and y scaled so the frame spans 0..255."""
    h, w = positions.shape[:2]
    scale = np.array([255.0 / max(w - 1, 1), 255.0 / max(h - 1, 1)], dtype=np.float32)
    return (np.clip(positions * scale, 0, 255) + 0.5).astype(np.uint8)


def temporal_guide(prev_output: np.ndarray, flow_to_prev: np.ndarray) -> np.ndarray:
    """The previously synthesised frame warped onto this frame (uint8 RGB)."""
    from .warping import warp

    return warp(prev_output, flow_to_prev, mode="bilinear")


# local_slopes: box window radius (px) and regulariser (grey levels squared). The regulariser keeps
# slopes near 0 where the key's input is nearly flat (noise there says nothing about the style's
# response); both measured on bench_quality (docs/method.md, "Candidates").
SLOPE_RADIUS = 4
SLOPE_EPS = 400.0
# sigma (px) of the blur of the input residual before it is transferred: the filters a style comes
# from rarely pass the input's pixel noise on, and the unblurred residual cost PSNR on vtest
RESIDUAL_BLUR = 1.0


def local_slopes(frame: np.ndarray, style: np.ndarray, radius: int = SLOPE_RADIUS,
                 eps: float = SLOPE_EPS) -> np.ndarray:
    """Per-pixel, per-channel slope of ``style`` against ``frame`` (float32 H x W x C): the least-squares
    fit ``style ~ a frame + b`` in every (2 radius + 1)^2 window, regularised by ``eps`` and averaged over
    the windows that cover a pixel (the guided filter's coefficients). 1 where the style follows its
    input one to one, 0 where it ignores it (flat colours), negative where it inverts it."""
    _check_frame(frame, "frame")
    _check_frame(style, "style")
    if frame.shape != style.shape:
        raise ValueError(f"style: shape {style.shape} does not match the frame's {frame.shape}")
    if radius < 1 or not eps > 0:
        raise ValueError(f"local_slopes: radius must be >= 1 and eps > 0, got {radius} and {eps}")
    k = (2 * radius + 1, 2 * radius + 1)

    def box(x):
        return cv2.blur(x, k, borderType=cv2.BORDER_REFLECT)

    i, t = frame.astype(np.float32), style.astype(np.float32)
    mi, mt = box(i), box(t)
    a = (box(i * t) - mi * mt) / (box(i * i) - mi * mi + np.float32(eps))
    return box(a)


def transfer_residual(image: np.ndarray, nnf: np.ndarray, frame: np.ndarray, key_frame: np.ndarray,
                      slopes: np.ndarray, gain: float) -> np.ndarray:
    """``image`` (synthesised from the key's patches at ``nnf``) plus ``gain`` times the key's local
    slope at each source pixel times the input's residual ``frame(x) - key_frame(nnf(x))``: the change
    of input the copied patch does not explain, carried into the style as the key's own input-to-style
    relation predicts. The residual is blurred (``RESIDUAL_BLUR``) first. Same dtype as ``image`` (uint8
    rounded and clipped; float32 as computed)."""
    x = np.clip(nnf[..., 0], 0, key_frame.shape[1] - 1)
    y = np.clip(nnf[..., 1], 0, key_frame.shape[0] - 1)
    residual = frame.astype(np.float32) - key_frame[y, x].astype(np.float32)
    residual = cv2.GaussianBlur(residual, (0, 0), RESIDUAL_BLUR, borderType=cv2.BORDER_REFLECT)
    out = image.astype(np.float32) + np.float32(gain) * slopes[y, x] * residual
    if image.dtype == np.uint8:
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out, dtype=np.float32)
