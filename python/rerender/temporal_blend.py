"""Temporal-aware blending of the two candidates of a segment (docs/method.md, section 3).

For a segment between keys a < b, every frame i has a candidate propagated from a and one from b,
each with its patch-error map. Three methods (``PropagationConfig.blend``):

``"soft"`` (default) — soft weights, temporal filtering along the flow, detail restoration:
1. a soft weight per pixel from the two (lightly blurred) error maps, ``w_a = 1 / (1 + (E_a / E_b)^p)``
   nudged by the temporal distances, whose change from frame to frame (carried along the flow) is
   limited to ``WEIGHT_STEP``: no pixel switches between candidates, and the weights stay smooth;
2. the linear mix ``C_i = w_a A_i + (1 - w_a) B_i``;
3. a two-sided recursive filter along the flow, ``F_i = beta warp(F_{i-1}) + (1 - beta) C_i`` from key a
   and ``G_i`` likewise from key b, output ``(F_i + G_i) / 2``. ``beta`` (``smoothing``) is reduced
   where the flow is occluded and where the candidates agree, so identical candidates pass unchanged;
   this averages the two candidates' independent flicker over neighbouring frames;
4. detail restoration: averaging attenuates the fine band (texture the candidates do not share), so
   the band ``x - blur(x)`` is rescaled to the local energy the candidates have. The attenuation is
   measured on the blend itself, which accounts for how correlated the candidates are (the
   Heitz–Neyret normalisation ``1 / sqrt(w_a^2 + w_b^2)`` assumes independent inputs and
   over-stretches correlated ones, see ``blend_candidates``).

Measured alternatives that lost (bench_quality.py, 4 real clips): weights by temporal distance alone
(-0.3 to -0.5 dB against error weights); error maps accumulated along the pass, or weights from each
candidate's own frame-to-frame stability (both lower PSNR); aligning the candidates to each other by
optical flow before averaging (no gain: they differ in texture, not position); the Heitz–Neyret blend
with a local correlation estimate in Gaussianised space, and histogram matching of the blend to the
candidates (per-frame tone mappings: +20-40% warp error for less detail than step 4); unsharp masking
(-0.5 to -1 dB for the same detail); a recursion whose weight follows the error maps; Lanczos
resampling in the recursion (+0.01 detail ratio for 4x the resampling cost).

``"select"`` — the paper's selection mask and histogram-preserving blend:
1. selection mask: 1 where candidate a is kept. M_a = 1; for i = a+1 ... the previous mask is carried
   along the flow to frame i and cleared where the distance-weighted error prefers b. A pixel can thus
   only move from the earlier key to the later one, never back (no flicker between sources).
2. the masked combination (min-error colours) is the histogram reference of a histogram-preserving
   blend of the two candidates (the native ``histogram_blend``), weighted by the mask.

``"linear"`` — ``w_a = (b - i) / (b - a)``, the blend EbSynth users apply by hand.

Any of them may be followed by screened Poisson blending with the candidates' gradients mixed by the
same weights (:mod:`rerender.poisson`).

Measured on real footage (``benchmarks/bench_quality.py``): see README "Benchmarks".
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from .blend_methods import BLEND_METHODS

# "soft" constants (measured with benchmarks/bench_quality.py; see README "Benchmarks")
ERROR_POWER = 0.5        # p in w_a = 1 / (1 + (E_a / E_b)^p): 1 = inverse-error weights, 0 = ignore errors
DISTANCE_POWER = 0.25    # weight of the temporal-distance prior (1 = as strong as the linear blend's)
ERROR_BLUR = 1.0         # sigma (px) of the blur of the error maps before comparing them
WEIGHT_STEP = 0.2        # largest change of a pixel's weight from one frame to the next (along the flow)
AGREEMENT = 4.0          # grey levels: candidates closer than this are not filtered over time
DETAIL_SIGMA = 1.0       # the detail band is x - GaussianBlur(x, DETAIL_SIGMA)
DETAIL_WINDOW = 3.0      # sigma (px) of the window in which band energies are compared
DETAIL_MAX_GAIN = 3.0    # cap of the detail gain (a flat blend never gets amplified noise)


def distance_weights(index: int, key_a: int, key_b: int) -> tuple[float, float]:
    """Temporal distances of frame ``index`` to the two keys (frames from the key, >= 0)."""
    if not key_a <= index <= key_b or key_a == key_b:
        raise ValueError(f"index: frame {index} is not inside the segment {key_a}..{key_b}")
    return float(index - key_a), float(key_b - index)


def prefer_a(error_a: np.ndarray, error_b: np.ndarray, dist_a: float, dist_b: float) -> np.ndarray:
    """Per-pixel choice (uint8, 1 = candidate a) comparing errors weighted by distance to each key.

    A candidate's error is scaled by how far it was propagated: a patch error far from its key is
    less trustworthy (drift accumulates) than the same error next to it.
    """
    if error_a.shape != error_b.shape:
        raise ValueError(f"error maps: shapes {error_a.shape} and {error_b.shape} differ")
    return (np.asarray(error_a, np.float64) * dist_a < np.asarray(error_b, np.float64) * dist_b).astype(np.uint8)


def next_selection_mask(prev_mask: np.ndarray | None, flow_to_prev: np.ndarray | None,
                        error_a: np.ndarray, error_b: np.ndarray, dist_a: float, dist_b: float) -> np.ndarray:
    """Selection mask of frame i from the mask of frame i-1 (``None`` right after key a: all ones).

    ``flow_to_prev``: flow from frame i to frame i-1 (on frame i's grid). The previous mask follows
    the flow (nearest sampling keeps it binary), then is cleared where this frame prefers b.
    """
    choice = prefer_a(error_a, error_b, dist_a, dist_b)
    if prev_mask is None:
        return choice
    from .warping import warp

    carried = warp(np.ascontiguousarray(prev_mask, dtype=np.uint8), flow_to_prev, mode="nearest")
    carried = carried.reshape(choice.shape)
    return (carried & choice).astype(np.uint8)


def blend_candidates(cand_a: np.ndarray, cand_b: np.ndarray, mask_a: np.ndarray, poisson: bool = False,
                     poisson_lambda: float = 0.1, region: np.ndarray | None = None) -> np.ndarray:
    """Blend two candidates (uint8, or float32 of the working format) given the selection mask (1 =
    candidate a): the ``"select"`` method.

    The min-error combination (a where the mask is set, b elsewhere) is the histogram reference of
    the native histogram-preserving blend, whose per-pixel weight is the mask itself. Weights
    strictly between 0 and 1 are avoided on purpose: the variance-preserving normalisation
    1/sqrt(w_a^2 + w_b^2) assumes independent inputs, and the two candidates are strongly correlated
    (the same content from two keys), so a 50:50 blend would stretch the contrast (measured: a frame
    blended with itself at 0.5 drops to ~28 dB PSNR). With binary weights each candidate is mapped to
    the combination's histogram, and identical candidates come back unchanged.

    ``region`` (bool H x W, None = everywhere): where the candidates were synthesised (a matte's).
    Histograms are taken over the region's pixels only, and outside it ``cand_a`` comes back exactly.
    """
    from .histblend import histogram_blend

    _check_pair(cand_a, cand_b)
    m = np.asarray(mask_a).reshape(cand_a.shape[:2]) != 0
    r = None if region is None else _check_region(region, cand_a.shape[:2])
    if r is None:
        combined = np.where(m[:, :, None] if cand_a.ndim == 3 else m, cand_a, cand_b)
        out = histogram_blend(cand_a, cand_b, m.astype(np.float32), reference=combined)
    else:
        out = cand_a.copy()
        if r.any():  # the region's pixels as one 1 x N image: no masked-out pixel in any histogram
            ia, ib, mi = cand_a[r][None], cand_b[r][None], m[r][None]
            combined = np.where(mi[..., None] if ia.ndim == 3 else mi, ia, ib)
            out[r] = histogram_blend(ia, ib, mi.astype(np.float32), reference=combined)[0]
    return _finish_poisson(np.ascontiguousarray(out), cand_a, cand_b, m.astype(np.float32), poisson, poisson_lambda, r)


# ------------------------------------------------------------------------------------------------
# argument checks, shared by every method


def _check_image(img, name: str) -> None:
    if not isinstance(img, np.ndarray) or img.dtype not in (np.uint8, np.float32) or img.ndim not in (2, 3):
        raise ValueError(f"{name}: expected a uint8 or float32 H x W (x C) image, got "
                         f"{getattr(img, 'dtype', type(img).__name__)} with shape {getattr(img, 'shape', None)}")


def _check_pair(cand_a, cand_b) -> None:
    _check_image(cand_a, "cand_a")
    _check_image(cand_b, "cand_b")
    if cand_a.shape != cand_b.shape:
        raise ValueError(f"candidates: shapes {cand_a.shape} and {cand_b.shape} differ")
    if cand_a.dtype != cand_b.dtype:
        raise ValueError(f"candidates: dtypes {cand_a.dtype} and {cand_b.dtype} differ")


def _check_weight(weight_a, hw: tuple[int, int]) -> np.ndarray:
    w = np.asarray(weight_a)
    if w.dtype.kind != "f":
        raise ValueError(f"weight_a: expected a float H x W map, got dtype {w.dtype}")
    if w.shape != hw:
        raise ValueError(f"weight_a: shape {w.shape} does not match the candidates' {hw}")
    if not np.all(np.isfinite(w)):
        raise ValueError("weight_a: values must be finite numbers in [0, 1] (found NaN or inf)")
    if w.min(initial=0.0) < 0 or w.max(initial=0.0) > 1:
        raise ValueError(f"weight_a: values must lie in [0, 1], got [{w.min()}, {w.max()}]")
    return w.astype(np.float32, copy=False)


def _check_errors(error_a, error_b) -> tuple[np.ndarray, np.ndarray]:
    out = []
    for name, e in (("error_a", error_a), ("error_b", error_b)):
        e = np.asarray(e)
        if e.ndim != 2 or e.dtype.kind != "f":
            raise ValueError(f"{name}: expected a float H x W error map, got dtype {e.dtype} shape {e.shape}")
        if not np.all(np.isfinite(e)) or e.min(initial=0.0) < 0:
            raise ValueError(f"{name}: patch errors must be finite and >= 0")
        out.append(e.astype(np.float32, copy=False))
    if out[0].shape != out[1].shape:
        raise ValueError(f"error maps: shapes {out[0].shape} and {out[1].shape} differ")
    return out[0], out[1]


def _check_region(region, hw: tuple[int, int]) -> np.ndarray:
    r = np.asarray(region)
    if r.dtype.kind not in "biu":
        raise ValueError(f"region: expected a bool or integer H x W mask, got dtype {r.dtype}")
    if r.shape != hw:
        raise ValueError(f"region: shape {r.shape} does not match the candidates' {hw}")
    return r if r.dtype == bool else r != 0


# ------------------------------------------------------------------------------------------------
# "soft": building blocks


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur truncated at 2 sigma (OpenCV's default 4 sigma doubles the cost for nothing here)."""
    k = 2 * int(np.ceil(2 * sigma)) + 1
    return cv2.GaussianBlur(x, (k, k), sigma, borderType=cv2.BORDER_REFLECT)


class _Support:
    """Local statistics restricted to a region (normalised convolution: ``blur(x m) / blur(m)``), so
    that pixels outside a matte's region never enter a statistic of the pixels inside it. ``None``
    region: plain blurs (the whole frame is synthesised)."""

    def __init__(self, region: np.ndarray | None):
        self.mask = region
        self._f = None if region is None else region.astype(np.float32)
        self._norm: dict[float, np.ndarray] = {}
        self._inner: np.ndarray | None = None

    @property
    def inner(self) -> np.ndarray | None:
        """The region shrunk by one pixel (float32 0/1): where the bicubic resampling of a carried
        state (a 4 x 4 neighbourhood) reads only pixels inside the region."""
        if self.mask is None:
            return None
        if self._inner is None:
            self._inner = cv2.erode(self._f, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
        return self._inner

    def blur(self, x: np.ndarray, sigma: float) -> np.ndarray:
        if self.mask is None:
            return _blur(x, sigma)
        n = self._norm.get(sigma)
        if n is None:
            n = self._norm[sigma] = np.maximum(_blur(self._f, sigma), np.float32(1e-6))
        if x.ndim == 3:
            return _blur(x * self._f[:, :, None], sigma) / n[:, :, None]
        return _blur(x * self._f, sigma) / n

    def mean(self, x: np.ndarray) -> float:
        if self.mask is None:
            return float(x.mean())
        return float(x[self.mask].mean()) if self.mask.any() else 0.0


def _support(region, hw) -> _Support:
    return region if isinstance(region, _Support) else _Support(None if region is None else _check_region(region, hw))


def soft_weights(error_a: np.ndarray, error_b: np.ndarray, dist_a: float, dist_b: float,
                 region: np.ndarray | None = None) -> np.ndarray:
    """Weight of candidate a per pixel (float32 H x W, strictly inside (0, 1)) from the patch errors
    and the temporal distances to the two keys: ``logit w_a = ERROR_POWER log(E_b / E_a) +
    DISTANCE_POWER log(dist_b / dist_a)`` on lightly blurred error maps (blurred within ``region``).

    The error maps already grow with the distance to their key (drift), so the distance prior is weak:
    measured on real footage, inverse-error weights beat distance weights by 0.3-0.5 dB.
    """
    ea, eb = _check_errors(error_a, error_b)
    if not (dist_a > 0 and dist_b > 0):
        raise ValueError(f"distances: both must be > 0, got {dist_a} and {dist_b}")
    sup = _support(region, ea.shape)
    ea, eb = sup.blur(ea, ERROR_BLUR), sup.blur(eb, ERROR_BLUR)
    eps = 1e-3 * max(sup.mean(ea), sup.mean(eb), 1e-30)  # relative: errors come in the data's units
    z = ERROR_POWER * (np.log(eb + eps) - np.log(ea + eps)) + DISTANCE_POWER * np.log(dist_b / dist_a)
    return (1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))).astype(np.float32)


_GRIDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def carry(image: np.ndarray, flow_to_other: np.ndarray, sharp: bool = True) -> np.ndarray:
    """``image`` of a neighbouring frame moved onto this frame along the flow: ``out(x) = image(x +
    flow(x))``, float32. ``sharp``: bicubic resampling (a recursion resamples its state every frame:
    bilinear blurs it, measured -0.05 detail ratio; Lanczos gains +0.01 for 4x the cost); else bilinear."""
    h, w = flow_to_other.shape[:2]
    if image.shape[:2] != (h, w):
        raise ValueError(f"carry: image {image.shape} and flow {flow_to_other.shape} differ in size")
    grid = _GRIDS.get((h, w))
    if grid is None:
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        grid = _GRIDS[(h, w)] = (xs, ys)
    mx = grid[0] + flow_to_other[..., 0]
    my = grid[1] + flow_to_other[..., 1]
    out = cv2.remap(np.asarray(image, np.float32), mx, my, cv2.INTER_CUBIC if sharp else cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(image.shape)


def limit_step(weight: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """``weight`` moved at most ``WEIGHT_STEP`` away from ``previous`` (the last frame's weights carried
    onto this frame; None = no previous frame): hysteresis against flicker between the candidates."""
    if previous is None:
        return weight
    return (previous + np.clip(weight - previous, -WEIGHT_STEP, WEIGHT_STEP)).astype(np.float32)


def mix(cand_a: np.ndarray, cand_b: np.ndarray, weight_a: np.ndarray) -> np.ndarray:
    """``w_a a + (1 - w_a) b`` in float32 (the soft blend before temporal filtering and detail)."""
    _check_pair(cand_a, cand_b)
    w = _check_weight(weight_a, cand_a.shape[:2])
    if cand_a.ndim == 3:
        w = w[:, :, None]
    b = cand_b.astype(np.float32)
    return b + w * (cand_a.astype(np.float32) - b)


def restore_detail(blend: np.ndarray, cand_a: np.ndarray, cand_b: np.ndarray, weight_a: np.ndarray,
                   strength: float = 1.0, region: np.ndarray | None = None) -> np.ndarray:
    """Give the fine band of ``blend`` (float32 H x W x C) back the local energy of the candidates'.

    Averaging two candidates attenuates what they do not share (independently synthesised texture);
    how much depends on how correlated they are, which the blend's own band energy measures. With
    energies summed over the channels in a Gaussian window (one gain per pixel keeps the detail's
    colour): ``gain = sqrt((w_a |a'|^2 + w_b |b'|^2) / |blend'|^2)`` (' = the band ``x - blur(x)``),
    clamped to [1, DETAIL_MAX_GAIN] and raised to ``strength`` (0 = off). Only amplifies: where the
    candidates agree (or one has all the weight) the gain is 1 and the blend passes unchanged.
    ``region``: bands and energies are taken within it (pixels outside do not count).
    """
    _check_pair(cand_a, cand_b)
    w = _check_weight(weight_a, cand_a.shape[:2])
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength: must be in [0, 1], got {strength}")
    blend = np.asarray(blend, np.float32)
    if blend.shape != cand_a.shape:
        raise ValueError(f"blend: shape {blend.shape} does not match the candidates' {cand_a.shape}")
    if strength == 0.0:
        return blend
    sup = _support(region, cand_a.shape[:2])

    def band(x):
        low = sup.blur(x, DETAIL_SIGMA)
        return low, x - low

    def energy(b):  # local mean of the squared band over the channels and a Gaussian window
        return sup.blur(_channel_mean(b * b), DETAIL_WINDOW)

    _, band_a = band(cand_a.astype(np.float32))
    _, band_b = band(cand_b.astype(np.float32))
    low, band_m = band(blend)
    target = w * energy(band_a) + (1.0 - w) * energy(band_b)
    actual = energy(band_m)
    gain = np.clip(np.sqrt((target + 1e-4) / (actual + 1e-4)), 1.0, DETAIL_MAX_GAIN)
    if strength != 1.0:
        gain = gain ** strength
    # blend + (gain - 1) band: exactly the blend where the gain is 1 (float32 data is not rounded
    # afterwards, so "unchanged" must hold to the bit); gains within rounding noise of 1 count as 1
    extra = np.where(gain < 1.0 + 1e-3, np.float32(0.0), gain - np.float32(1.0)).astype(np.float32)
    return blend + (extra[:, :, None] if band_m.ndim == 3 else extra) * band_m


def _channel_mean(x: np.ndarray) -> np.ndarray:
    """Mean over the last axis of float32 H x W x C (cv2.transform: numpy's mean over a short last
    axis is ~30x slower); H x W input passes through."""
    if x.ndim == 2:
        return x
    c = x.shape[2]
    if c <= 4:
        return cv2.transform(np.ascontiguousarray(x, np.float32), np.full((1, c), 1.0 / c, np.float32))
    return x.mean(axis=2)


def soft_blend(cand_a: np.ndarray, cand_b: np.ndarray, weight_a: np.ndarray, detail: float = 1.0,
               region: np.ndarray | None = None) -> np.ndarray:
    """One frame of the soft blend without temporal filtering (``blend_smoothing`` 0): the weighted mix
    of the two candidates with its detail restored (:func:`restore_detail`), in the candidates' dtype
    (uint8 rounded; float32 as computed, never quantised).

    Weight 1 (0) returns ``cand_a`` (``cand_b``) exactly, identical candidates come back unchanged, and
    flat colours stay flat (the detail band of a constant is 0). Outside ``region``: ``cand_a``.
    """
    sup = _support(region, cand_a.shape[:2])
    out = restore_detail(mix(cand_a, cand_b, weight_a), cand_a, cand_b, weight_a, detail, sup)
    return _finish(out, cand_a, cand_b, weight_a, False, 0.1, sup.mask)


def disagreement(cand_a: np.ndarray, cand_b: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """How much the candidates disagree locally, in [0, 1) (float32 H x W): 0 where they agree within
    ~AGREEMENT grey levels (nothing to smooth over time there), towards 1 where they differ. Grey
    levels of the working format: uint8, or float32 on the same 0..255 scale."""
    diff = cand_a.astype(np.float32) - cand_b.astype(np.float32)
    d2 = _channel_mean(diff * diff)
    sup = _support(region, cand_a.shape[:2])
    return (1.0 - np.exp(-sup.blur(d2, 2.0) / (2.0 * AGREEMENT ** 2))).astype(np.float32)


def _to_dtype(x: np.ndarray, dtype) -> np.ndarray:
    """float32 -> the candidates' dtype: uint8 rounded and clipped; float32 kept (no quantisation)."""
    if dtype == np.uint8:
        return np.ascontiguousarray(np.clip(x + 0.5, 0, 255).astype(np.uint8))
    return np.ascontiguousarray(x, dtype=np.float32)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return _to_dtype(x, np.uint8)


def _finish_poisson(img: np.ndarray, ca, cb, w, poisson: bool, poisson_lambda: float,
                    region: np.ndarray | None) -> np.ndarray:
    if poisson:
        from .poisson import poisson_blend

        if region is not None:  # the solve is global: anchor it to the plate outside, never to stray values
            img = np.where(region[:, :, None] if img.ndim == 3 else region, img, ca)
        img = poisson_blend(img, ca, cb, w, poisson_lambda, region=region)
    if region is not None:  # outside the synthesised region: the candidates' own pixels, exactly
        img = np.where(region[:, :, None] if img.ndim == 3 else region, img, ca)
    return np.ascontiguousarray(img)


def _finish(out: np.ndarray, ca, cb, w, poisson: bool, poisson_lambda: float, region: np.ndarray | None) -> np.ndarray:
    return _finish_poisson(_to_dtype(out, ca.dtype), ca, cb, w, poisson, poisson_lambda, region)


class _FrameStore:
    """Per-frame float32 arrays of one segment: in memory, or as .npy files under ``folder``
    (bounded memory on long segments at high resolution). Removes only what it wrote."""

    def __init__(self, folder: Path | None, tag: str):
        self.folder, self.tag, self.mem, self.files = folder, tag, {}, []
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

    def put(self, i: int, x: np.ndarray) -> None:
        if self.folder is None:
            self.mem[i] = x
            return
        path = self.folder / f"{self.tag}{i:06d}.npy"
        np.save(path, np.ascontiguousarray(x, np.float32), allow_pickle=False)
        self.files.append(path)

    def get(self, i: int) -> np.ndarray:
        if self.folder is None:
            return self.mem[i]
        return np.load(self.folder / f"{self.tag}{i:06d}.npy", allow_pickle=False)

    def clear(self) -> None:
        self.mem.clear()
        for p in self.files:
            p.unlink(missing_ok=True)
        self.files.clear()
        if self.folder is not None and self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()


# ------------------------------------------------------------------------------------------------
# one segment, any method

CandidateLoader = Callable[[int], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
FlowLoader = Callable[[int, int], np.ndarray]
RegionLoader = Callable[[int], "np.ndarray | None"]


@dataclass(frozen=True)
class BlendOptions:
    """How a segment's candidates are blended (``PropagationConfig.blend_options()``): ``method`` (a
    key of :data:`BLENDERS`); ``smoothing`` (beta of the temporal recursion, [0, 1)) and ``detail``
    (strength of the detail restoration, [0, 1]) for ``"soft"``; screened Poisson after any method."""

    method: str = "soft"
    smoothing: float = 0.5
    detail: float = 1.0
    poisson: bool = False
    poisson_lambda: float = 0.1

    def __post_init__(self) -> None:
        if self.method not in BLEND_METHODS:
            raise ValueError(f"method: {self.method!r} is not one of {', '.join(BLEND_METHODS)}")
        if not 0.0 <= self.smoothing < 1.0:
            raise ValueError(f"smoothing: must be in [0, 1), got {self.smoothing}")
        if not 0.0 <= self.detail <= 1.0:
            raise ValueError(f"detail: must be in [0, 1], got {self.detail}")
        if not self.poisson_lambda > 0:
            raise ValueError(f"poisson_lambda: must be > 0, got {self.poisson_lambda}")


@dataclass
class SegmentInputs:
    """What the blend of the segment between keys ``a`` < ``b`` reads.

    ``key_a``, ``key_b``: the key frames' images. ``candidates(i)`` returns ``(image_a, image_b,
    error_a, error_b)`` for frame i (the candidates propagated from a and from b, uint8 or float32 of
    the working format, and their patch errors); ``flow(i, j)`` the flow i -> j of neighbouring
    frames; ``occluded(i, j)`` its occlusion mask on i's grid when the caller keeps them (None: from
    the flows). ``region(i)``: where frame i (keys included) was synthesised (a matte's grown region,
    bool H x W; None = everywhere): statistics and the temporal recursion use only pixels inside, and
    outside it the result is candidate a's pixels exactly (what the passes left there: the plate's).
    ``scratch``: folder for the soft method's per-frame intermediates (None = in memory); its files
    are removed at the end, and the folder too when it is left empty.
    """

    a: int
    b: int
    key_a: np.ndarray
    key_b: np.ndarray
    candidates: CandidateLoader
    flow: FlowLoader
    occluded: FlowLoader | None = None
    region: RegionLoader | None = None
    scratch: Path | None = None

    def __post_init__(self) -> None:
        if not self.b - self.a >= 2:
            raise ValueError(f"segment: keys {self.a} and {self.b} have no frame between them")
        _check_image(self.key_a, "key_a")
        _check_image(self.key_b, "key_b")
        if self.key_a.shape != self.key_b.shape:
            raise ValueError(f"keys: shapes {self.key_a.shape} and {self.key_b.shape} differ")
        if self.occluded is None:
            from .warping import occlusion

            flow = self.flow
            self.occluded = lambda i, j: occlusion(flow(i, j), flow(j, i))

    @property
    def frames(self) -> range:
        return range(self.a + 1, self.b)

    def load(self, i: int):
        ca, cb, ea, eb = self.candidates(i)
        _check_pair(ca, cb)
        if ca.shape != self.key_a.shape:
            raise ValueError(f"frame {i}: candidates {ca.shape} and key frames {self.key_a.shape} differ in shape")
        return ca, cb, ea, eb

    def region_of(self, i: int, hw) -> np.ndarray | None:
        r = None if self.region is None else self.region(i)
        return None if r is None else _check_region(r, hw)


Blended = Iterator[tuple[int, np.ndarray, np.ndarray]]


def blend_segment(seg: SegmentInputs, options: BlendOptions = BlendOptions()) -> Blended:
    """Blend every frame strictly between the keys of ``seg``; yields ``(i, image, weight)`` in order.

    ``image`` has the candidates' dtype; ``weight`` is a uint8 H x W map of candidate a's weight
    (255 = a only; binary for ``"select"``).
    """
    return BLENDERS[options.method](seg, options)


def _blend_select(seg: SegmentInputs, opt: BlendOptions) -> Blended:
    mask = None
    for i in seg.frames:
        ca, cb, ea, eb = seg.load(i)
        da, db = distance_weights(i, seg.a, seg.b)
        mask = next_selection_mask(mask, seg.flow(i, i - 1) if mask is not None else None, ea, eb, da, db)
        out = blend_candidates(ca, cb, mask, poisson=opt.poisson, poisson_lambda=opt.poisson_lambda,
                               region=seg.region_of(i, ca.shape[:2]))
        yield i, out, mask * np.uint8(255)


def _blend_linear(seg: SegmentInputs, opt: BlendOptions) -> Blended:
    for i in seg.frames:
        ca, cb, _, _ = seg.load(i)
        da, db = distance_weights(i, seg.a, seg.b)
        w = np.full(ca.shape[:2], db / (da + db), np.float32)
        out = _finish(mix(ca, cb, w), ca, cb, w, opt.poisson, opt.poisson_lambda, seg.region_of(i, ca.shape[:2]))
        yield i, out, _to_uint8(w * 255)


def _blend_soft(seg: SegmentInputs, opt: BlendOptions) -> Blended:
    a, b, flow = seg.a, seg.b, seg.flow
    hw = seg.key_a.shape[:2]
    supports: dict[int, _Support] = {}

    def support(i: int) -> _Support:  # the last few frames' regions (each is needed by i - 1, i, i + 1)
        if i not in supports:
            if len(supports) > 4:
                supports.pop(next(iter(supports)))
            supports[i] = _Support(seg.region_of(i, hw))
        return supports[i]

    scratch = seg.scratch
    weights, gates, backward = _FrameStore(scratch, "w"), _FrameStore(scratch, "d"), _FrameStore(scratch, "g")
    try:
        # 1. soft weights, rate-limited along the flow (forward), and where the candidates disagree
        prev = None
        for i in seg.frames:
            ca, cb, ea, eb = seg.load(i)
            da, db = distance_weights(i, a, b)
            w = soft_weights(ea, eb, da, db, support(i))
            w = limit_step(w, None if prev is None else carry(prev, flow(i, i - 1), sharp=False))
            weights.put(i, w)
            gates.put(i, disagreement(ca, cb, support(i)))
            prev = w

        def step(state, i, j, current):
            # beta = smoothing where the candidates disagree; 0 where the flow is occluded, and where
            # the neighbour's pixel lies outside its region (no masked-out pixel is carried inside)
            beta = opt.smoothing * gates.get(i)
            beta[seg.occluded(i, j) != 0] = 0.0
            here, there = support(i).mask, support(j).inner
            if there is not None:
                beta[carry(there, flow(i, j), sharp=False) < 0.999] = 0.0
            if here is not None:
                beta[~here] = 0.0
            if current.ndim == 3:
                beta = beta[:, :, None]
            return current + beta * (carry(state, flow(i, j)) - current)

        # 2. the recursion from key b (backward), kept for pass 3
        state = seg.key_b.astype(np.float32)
        for i in reversed(seg.frames):
            ca, cb, _, _ = seg.load(i)
            state = step(state, i, i + 1, mix(ca, cb, weights.get(i)))
            backward.put(i, state)
        # 3. the recursion from key a (forward), the two-sided average, detail
        state = seg.key_a.astype(np.float32)
        for i in seg.frames:
            ca, cb, _, _ = seg.load(i)
            w = weights.get(i)
            state = step(state, i, i - 1, mix(ca, cb, w))
            out = restore_detail(0.5 * (state + backward.get(i)), ca, cb, w, opt.detail, support(i))
            yield i, _finish(out, ca, cb, w, opt.poisson, opt.poisson_lambda, support(i).mask), _to_uint8(w * 255)
    finally:
        for store in (weights, gates, backward):
            store.clear()


# The blending methods by name: a new method is an entry here (and its name in rerender.blend_methods,
# which the command line reads without importing numpy).
BLENDERS: dict[str, Callable[[SegmentInputs, BlendOptions], Blended]] = {
    "soft": _blend_soft, "select": _blend_select, "linear": _blend_linear}
if tuple(BLENDERS) != BLEND_METHODS:
    raise ImportError(f"temporal_blend.BLENDERS {tuple(BLENDERS)} and blend_methods.BLEND_METHODS {BLEND_METHODS} differ")
