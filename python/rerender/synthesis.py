"""Guided patch-based synthesis (EbSynth's algorithm: Jamriska et al. 2019), native CPU core and
CUDA backend (``backend=`` of :func:`synthesize`).

For every pixel of the target, find the source patch that best matches both the style being
synthesised and the guides (PatchMatch over an image pyramid, alternating search and voting,
with a uniformity term that spreads the use of source patches), then vote the output.

The energy of a match q for target pixel p (summed over the patch):
    E = style_weight / C_style * |style(q) - output(p)|^2 + sum_g w_g / C_g * |src_g(q) - tgt_g(p)|^2
and a candidate wins when E + uniformity * occupancy is lower (occupancy: how much the target
already uses the candidate's source pixels, relative to a uniform use). The returned error map is
the plain E. Where this differs from the public EbSynth, and why:
  * each level's first two searches compare guides only, also after a warm start: the style
    voted from a random, upsampled or previous frame's NNF is self-reinforcing and would lock in
    its errors (measured: up to +6 dB against the exact warp on a displaced texture, and a lower
    final energy; warm starts +0.1 to +1.6 dB on the benchmark);
  * coarse levels are 2x2 box averages, not point samples;
  * the guide-only searches compare the guide channels alone, packed (no zero style slots);
  * within a PatchMatch call, pixels whose match and neighbours' matches did not change during the
    last forward + backward scan are not scanned again (35% less time, same result); with
    ``init_nnf``, already after the first scan (a warm field is mostly right: a static background
    then skips the second scan); ``init_active`` can leave pixels out of the first scan too (the
    propagation does so where nothing changed since the previous frame);
  * threads scan fixed bands of rows that see each other's matches and the occupancy as they were
    after the previous scan: the result depends on the seed only, not on threads or scheduling.

Units: errors, ``uniformity`` and ``stop_threshold`` are in the units of the data. uint8 images
are 0-255; give float32 images on the same 0-255 scale for the defaults to mean what they mean
in EbSynth (a float guide in 0-1 would weigh 255^2 times less).

Performance (2-core AMD EPYC, Rerender's 4 guides = 12 guide channels, 12 x 6 iterations;
benchmarks/bench_synthesis.py): 512^2 takes ~0.8 s of CPU from scratch and ~0.6 s warm-started
from the previous frame's NNF; with 2 threads ~0.5 s and ~0.35 s wall (public EbSynth: 36 s);
1024^2 ~4 s / ~3 s of CPU, ~2.3 s / ~1.7 s wall with 2 threads.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence, Tuple

import numpy as np

from . import _native
from .backend import _as_cuda_interface, _to_torch_if_needed, resolve_backend

GuidePair = Tuple[np.ndarray, np.ndarray, float]


@dataclass(frozen=True)
class Synthesis:
    """Result of :func:`synthesize`.

    On the CUDA backend with GPU inputs the three stay on that GPU: torch CUDA tensors when an
    input was a torch tensor, else ``_native.CudaArray`` (``__cuda_array_interface__``).

    image: target H x W (x C), the style's dtype and channels.
    nnf: int32 H x W x 2, the (x, y) centre of the source patch used at every target pixel
        ((-1, -1) outside ``target_mask``).
    error: float32 H x W, the plain patch error E of that match (style + guide terms, without the
        uniformity term); 0 outside ``target_mask``.
    """

    image: np.ndarray
    nnf: np.ndarray
    error: np.ndarray


SynthesisParams = _native.SynthesisParams
"""The options of one call, named once (in the native binding's table; defaults of the core):

    style_weight: weight of the style term (split over the style's channels), default 1.
    patch_size: odd, 3..31, default 5.
    pyramid_levels: None = automatic (as many as keep the smaller image's short side
        >= 2 * patch_size + 1; with ``init_nnf``, a single level, the finest).
    search_vote_iters: search + vote iterations per level, default 12.
    patchmatch_iters: PatchMatch scans (alternating direction) per search, default 6.
    uniformity: weight of the occupancy term that penalises overused source patches, default 3500.
    search_radius: the random search's first radius in pixels of the level searched (then halved
        down to 1), 0 (default) = the exemplar's larger side. A warm-started call whose field is
        already close gains little from far candidates (the propagation: 16).
    stop_threshold: after a vote, pixels whose synthesised value changed by less than this
        (max over channels) are skipped by the next search (they still propagate matches), default 5.
    seed: seed of the random initialisation and search. On the CPU the result depends on
        the seed only: the same bytes for any ``threads`` and scheduling.
    threads: OpenMP threads, 0 = default (checked but unused on CUDA). The GIL is released
        while it runs.

``SynthesisParams(patch_size=7)``; ``params.replace(seed=3)`` is a changed copy; a bad value raises
ValueError naming the option.
"""


def synthesize(
    style: np.ndarray,
    guides: Sequence[GuidePair],
    params: SynthesisParams | None = None,
    *,
    init_nnf: np.ndarray | None = None,
    target_mask: np.ndarray | None = None,
    init_active: np.ndarray | None = None,
    backend: str = "auto",
    **options: Any,
) -> Synthesis:
    """Synthesise the target from the ``style`` exemplar, guided by ``guides``.

    Args:
        style: H_s x W_s (x C) uint8 or float32 exemplar (any channel count). Float32 values
            (here and in the guides) must be finite and at most 1e9 in magnitude, so that patch
            errors stay finite; larger ones raise ValueError naming the array.
        guides: one or more ``(source, target, weight)``: source on the style's grid, target on
            the target grid (all targets the same size, which is the output size), same channel
            count and dtype within a pair; ``weight`` >= 0 is split over the guide's channels.
        params: the options (:class:`SynthesisParams`; None = the defaults).
        init_nnf: int32 H_t x W_t x 2 warm start, e.g. the previous frame's ``nnf`` warped to
            this frame. It replaces the random initialisation; by default only the finest level
            is then solved (much cheaper). With explicit ``pyramid_levels`` it is downsampled to
            the coarsest level instead. Entries (-1, -1) mean "no guess" (random there).
        target_mask: uint8 H_t x W_t; only pixels with mask > 0 are searched and synthesised.
            Outside it the image is 0, the NNF (-1, -1) and the error 0 (composite with the mask).
        init_active: optional uint8 or bool H_t x W_t, with ``init_nnf`` only: 0 marks a pixel
            whose warm-start guess is already its answer (say, nothing changed there since the
            frame the field came from): it is left out of the searches until a vote changes its
            neighbourhood, and still voted. Read when the warm start starts the finest level (the
            default single level); pixels without a guess stay active. All ones (or None) gives
            the same result as without it. The CPU backend reads it; the CUDA backend checks
            nothing and ignores it (it searches every pixel: same quality, no saving).
        backend: ``"auto"`` (CUDA when a device is usable or an input is a GPU array, else the
            CPU), ``"cpu"`` or ``"cuda"``; see :mod:`rerender.backend`. On CUDA, style, guide
            images and ``target_mask`` may be GPU arrays (torch CUDA tensors, CuPy: read in
            place; ``init_nnf`` too, copied to the host for its bounds check); when any input
            is, the results are written on that GPU and returned there (torch tensors for torch
            inputs), otherwise they are numpy arrays. The CUDA search is parallel
            (jump-flood propagation), so its NNF differs from the CPU's for the same seed, at
            the same quality.
        options: options of :class:`SynthesisParams` by name, changing ``params``'s
            (``synthesize(style, guides, patch_size=7)``).

    Returns:
        :class:`Synthesis` (image, nnf, error). Raises ValueError naming a bad argument, or for
        ``backend="cuda"`` without a usable CUDA device.
    """
    if params is None:
        params = SynthesisParams(**options)
    elif options:
        params = params.replace(**options)
    arrays = dict(style=style, init_nnf=init_nnf, target_mask=target_mask, **_guide_arrays(guides))
    which = resolve_backend(backend, **arrays)
    if which == "cuda":
        native = _native.cuda_synthesize
        style, init_nnf, target_mask = map(_as_cuda_interface, (style, init_nnf, target_mask))
        guides = _guides_as_cuda_interface(guides)
    else:
        native = _native.synthesize
    extra = (init_active,) if which != "cuda" else ()  # (the CUDA search ignores it, see above)
    image, nnf, error = native(style, guides, params, init_nnf, target_mask, *extra)
    if which == "cuda":  # device results of device inputs: as torch tensors for torch inputs
        image, nnf, error = _to_torch_if_needed((image, nnf, error), arrays)
    return Synthesis(image=image, nnf=nnf, error=error)


def _guide_arrays(guides: Any) -> dict[str, Any]:
    """The guides' images by argument name, for backend selection. Malformed guides yield
    nothing here: the native binding reports them with their names."""
    found: dict[str, Any] = {}
    if isinstance(guides, (list, tuple)):
        for i, g in enumerate(guides):
            if isinstance(g, (list, tuple)) and len(g) == 3:
                found[f"guides[{i}].source"], found[f"guides[{i}].target"] = g[0], g[1]
    return found


def _guides_as_cuda_interface(guides: Any) -> Any:
    """DLPack-only GPU guide images as zero-copy views the CUDA binding reads."""
    if not isinstance(guides, (list, tuple)):
        return guides
    return [(_as_cuda_interface(g[0]), _as_cuda_interface(g[1]), g[2])
            if isinstance(g, (list, tuple)) and len(g) == 3 else g for g in guides]
