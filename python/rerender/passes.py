"""Propagate a stylised key frame along the video by guided patch-based synthesis (EbSynth-style).

A *pass* walks away from one key frame, one frame at a time. Each step builds the four guides of
docs/method.md section 3 (colour, edge, positional, temporal) and calls the native
:func:`rerender.synthesize` with the key's style as exemplar, warm-starting the nearest-neighbour field
from the previous frame's (advected along the flow: the key frame itself starts from the identity),
then adds to the result the input's change its copied patches do not explain (``residual_gain``:
:func:`rerender.guides.transfer_residual`).
The job (:mod:`rerender.job`) runs one pass forward from the earlier key and one backward from the
later key of every segment and blends them (:mod:`rerender.temporal_blend`).
"""
from __future__ import annotations

import dataclasses
import functools
import os
import time
from dataclasses import dataclass
from typing import Iterator, Literal, Protocol

import cv2
import numpy as np

from . import guides as G
from .blend_methods import BLEND_METHODS
from .media.images import MAX_WORKING_LONG_SIDE
from .memory import pass_memory, usable_memory

# Bounds of the native synthesis's arguments (csrc/bindings/synthesis_args.h and validate.h)
MAX_NATIVE_WEIGHT = 1e12
MAX_PATCH_SIZE = 31
MAX_NATIVE_ITERS = 10000
MAX_PYRAMID_LEVELS = 16
MAX_NATIVE_THREADS = 1024


@dataclass
class PropagationConfig:
    """Every option of the propagation job, with the reference defaults of docs/method.md."""

    # guide weights (each split over its channels by the synthesis)
    colour_weight: float = 6.0
    edge_weight: float = 0.5
    positional_weight: float = 2.0
    temporal_weight: float = 0.5
    style_weight: float = 1.0
    # after each synthesis, add the input's change the copied patches do not explain, mapped into the
    # style by the key's local input-to-style slope (guides.transfer_residual; 0 = off). Measured on the
    # six bench_quality cases: +0.01 to +0.29 dB and more detail on every one, warp error within 3%,
    # under 2% more job CPU (docs/method.md, "Candidates")
    residual_gain: float = 1.0
    # guided PatchMatch
    patch_size: int = 5
    uniformity: float = 3500.0
    search_vote_iters: int = 12
    # 2 scans per search and stop threshold 10, not EbSynth's 6 and 5: every step starts from the
    # previous frame's field (measured on the five bench_quality clips: 3 scans and threshold 10 were
    # within 0.01 dB and 1% warp error of 6 and 5, 13-36% less synthesis CPU; with the 16-px random
    # search below, 2 scans instead of 3: at most -0.05 dB, warp error within 1%, 7-20% less)
    patchmatch_iters: int = 2
    stop_threshold: float = 10.0
    # the random search's first radius (pixels; 0 = the whole key): the advected field is already
    # within a few pixels, so far candidates rarely win (bench_quality, all five clips: PSNR within
    # 0.04 dB and warp error within 1% of the whole key, synthesis 16-21% less CPU)
    search_radius: int = 16
    pyramid_levels: int | None = None
    # how each frame's nearest-neighbour field starts: advected from the previous frame along the
    # flow, the previous field as is, or a fresh random field (the public EbSynth's behaviour)
    warm_start: Literal["advect", "reuse", "none"] = "advect"
    # with "advect": pixels whose colour, edge (and matte) guides (5x5 patch) did not change since the
    # previous frame and that did not move keep the previous frame's match without a first search
    # (see changed_pixels(); docs/method.md "Static pixels skip the first search")
    static_skip: bool = True
    seed: int = 0
    # with a matte: weight of the matte as a guide (patches from inside the key's matte fill the inside
    # of the frame's) and how far beyond the matte texture is synthesised (pixels; covers the feather)
    matte_weight: float = 2.0
    matte_grow: int = 8
    # blending (rerender.temporal_blend): "soft" = soft error weights + temporal filtering along the
    # flow + detail restoration (steadier and closer to the truth than "select" on every clip of
    # README "Benchmarks"); "select" = the paper's selection mask + histogram-preserving blend;
    # "linear" = weights by temporal distance. blend_smoothing / blend_detail tune "soft".
    blend: Literal[BLEND_METHODS] = "soft"
    blend_smoothing: float = 0.5
    blend_detail: float = 1.0
    poisson: bool = False
    poisson_lambda: float = 0.1
    # parallelism: passes propagated at once (0 = one per core) and native threads per synthesis
    # (0 = 1: more than one makes results depend on thread timing, see parallelism())
    workers: int = 0
    threads: int = 0

    def __post_init__(self) -> None:
        # the native synthesis's bounds (csrc/bindings/synthesis_args.h, validate.h), checked here so
        # that a bad option is refused when it is read, before anything is decoded
        for name in ("colour_weight", "edge_weight", "positional_weight", "temporal_weight", "uniformity",
                     "stop_threshold", "matte_weight"):
            if not 0 <= getattr(self, name) <= MAX_NATIVE_WEIGHT:
                raise ValueError(f"{name}: must be in [0, {MAX_NATIVE_WEIGHT:g}], got {getattr(self, name)}")
        if not 0.0 <= self.residual_gain <= 1.0:
            raise ValueError(f"residual_gain: must be in [0, 1], got {self.residual_gain}")
        if not 0 <= self.matte_grow <= MAX_WORKING_LONG_SIDE:
            raise ValueError(f"matte_grow: must be from 0 to {MAX_WORKING_LONG_SIDE} pixels, got {self.matte_grow}")
        if not 0 < self.style_weight <= MAX_NATIVE_WEIGHT:
            raise ValueError(f"style_weight: must be > 0 and at most {MAX_NATIVE_WEIGHT:g}, got {self.style_weight}")
        if not 3 <= self.patch_size <= MAX_PATCH_SIZE or self.patch_size % 2 == 0:
            raise ValueError(f"patch_size: must be an odd number from 3 to {MAX_PATCH_SIZE}, got {self.patch_size}")
        if not 0 <= self.search_radius <= MAX_WORKING_LONG_SIDE:
            raise ValueError(f"search_radius: must be from 0 (the whole key) to {MAX_WORKING_LONG_SIDE} pixels, "
                             f"got {self.search_radius}")
        for name in ("search_vote_iters", "patchmatch_iters"):
            if not 1 <= getattr(self, name) <= MAX_NATIVE_ITERS:
                raise ValueError(f"{name}: must be from 1 to {MAX_NATIVE_ITERS}, got {getattr(self, name)}")
        if self.pyramid_levels is not None and not 1 <= self.pyramid_levels <= MAX_PYRAMID_LEVELS:
            raise ValueError(f"pyramid_levels: must be from 1 to {MAX_PYRAMID_LEVELS} or null, got {self.pyramid_levels}")
        if not 0 <= self.seed < 2 ** 64:
            raise ValueError(f"seed: must be from 0 to 2**64 - 1, got {self.seed}")
        if self.threads > MAX_NATIVE_THREADS:
            raise ValueError(f"threads: must be from 0 (automatic) to {MAX_NATIVE_THREADS}, got {self.threads}")
        if self.blend not in BLEND_METHODS:  # the Literal is checked for option files, not for Python callers
            raise ValueError(f"blend: {self.blend!r} is not one of {', '.join(map(repr, BLEND_METHODS))}")
        if not 0.0 <= self.blend_smoothing < 1.0:
            raise ValueError(f"blend_smoothing: must be in [0, 1), got {self.blend_smoothing}")
        if not 0.0 <= self.blend_detail <= 1.0:
            raise ValueError(f"blend_detail: must be in [0, 1], got {self.blend_detail}")
        if self.poisson_lambda <= 0:
            raise ValueError(f"poisson_lambda: must be > 0, got {self.poisson_lambda}")
        if self.workers < 0 or self.threads < 0:
            raise ValueError("workers/threads: must be >= 0 (0 = automatic)")

    def synthesis_fingerprint(self) -> dict:
        """The options that change synthesised candidates (blending options excluded)."""
        keys = ("colour_weight", "edge_weight", "positional_weight", "temporal_weight", "style_weight",
                "patch_size", "uniformity", "search_vote_iters", "patchmatch_iters", "stop_threshold", "search_radius",
                "pyramid_levels", "warm_start", "static_skip", "seed", "matte_weight", "matte_grow")
        out = {k: getattr(self, k) for k in keys}
        if self.residual_gain:  # (absent when off: such a job synthesises what one made before it did)
            out["residual_gain"] = self.residual_gain
        return out

    def blend_fingerprint(self) -> dict:
        """The options that change only the blending of stored candidates (a change re-blends)."""
        keys = ("blend", "blend_smoothing", "blend_detail", "poisson", "poisson_lambda")
        return {k: getattr(self, k) for k in keys}

    def synthesis_params(self, **changes):
        """The options of a pass's syntheses (:class:`rerender.synthesis.SynthesisParams`): the
        fields of that name here, changed by ``changes`` (each step's ``seed``, ``threads``)."""
        from .synthesis import SynthesisParams

        names = SynthesisParams().as_dict().keys() - {"seed", "threads"}  # (this seed seeds the steps')
        return SynthesisParams(**{k: getattr(self, k) for k in names}, **changes)

    def blend_options(self):
        """The blending options as :class:`rerender.temporal_blend.BlendOptions`."""
        from .temporal_blend import BlendOptions

        return BlendOptions(self.blend, self.blend_smoothing, self.blend_detail, self.poisson, self.poisson_lambda)

    def parallelism(self, passes: int, pixels: int = 0) -> tuple[int, int]:
        """(workers, native threads per synthesis) for ``passes`` passes of ``pixels``-pixel frames.

        Automatic: one pass per core, and the cores left over (fewer passes than cores) shared
        among the passes' syntheses; never more passes at once than the machine's memory holds
        (:func:`pass_memory`). The native synthesis gives the same bytes for any thread count,
        so a resumed job (with fewer passes left) still reproduces an uninterrupted one.
        """
        cores = max(1, os.cpu_count() or 1)
        workers = self.workers or cores
        workers = max(1, min(workers, max(1, passes), max(1, usable_memory() // max(1, pass_memory(pixels)))))
        threads = self.threads or max(1, cores // workers)
        return workers, threads


class FrameSource(Protocol):
    """What a pass reads: input frames and consecutive flows (flow(a, b) = flow_{a->b}, |a - b| = 1);
    optionally ``matte(index)`` (uint8 H x W, white = restyle, or None: the whole frame) and
    ``occluded(a, b)`` (the occlusion mask of the pair on a's grid, when the source keeps them)."""

    def frame(self, index: int) -> np.ndarray: ...

    def flow(self, a: int, b: int) -> np.ndarray: ...


@dataclass
class KeyFrame:
    """A key frame: its index, stylised image and input frame (RGB, same size: uint8, or float32 on
    the 0..255 scale for high-bit-depth plates), and its matte (uint8 H x W, white = restyle) if any."""

    index: int
    style: np.ndarray
    frame: np.ndarray
    matte: np.ndarray | None = None
    _edge: np.ndarray | None = dataclasses.field(default=None, init=False, repr=False)
    _positional: np.ndarray | None = dataclasses.field(default=None, init=False, repr=False)
    _slopes: np.ndarray | None = dataclasses.field(default=None, init=False, repr=False)

    @property
    def edge(self) -> np.ndarray:
        """The key frame's edge guide (the same for every step of its pass: computed once)."""
        if self._edge is None:
            self._edge = G.edge_guide(self.frame)
        return self._edge

    @property
    def positional(self) -> np.ndarray:
        """The key frame's positional guide (its own coordinates)."""
        if self._positional is None:
            self._positional = G.positional_guide(G.coordinate_map(*self.frame.shape[:2]))
        return self._positional

    @property
    def slopes(self) -> np.ndarray:
        """The key's local input-to-style slopes (:func:`rerender.guides.local_slopes`), computed once."""
        if self._slopes is None:
            self._slopes = G.local_slopes(self.frame, self.style)
        return self._slopes

    def __post_init__(self) -> None:
        if self.style.shape != self.frame.shape:
            raise ValueError(f"key {self.index}: style {self.style.shape} and input frame {self.frame.shape} "
                             "differ in size")
        if self.matte is not None and self.matte.shape != self.frame.shape[:2]:
            raise ValueError(f"key {self.index}: matte {self.matte.shape} and input frame {self.frame.shape} "
                             "differ in size")


@dataclass
class PassState:
    """What step i of a pass needs from step i-1: the frame's synthesis, NNF and positional map.

    Positions are kept at float16 precision (what the job stores), so a pass resumed from disk
    computes exactly what an uninterrupted one does.
    """

    index: int
    output: np.ndarray
    nnf: np.ndarray
    positions: np.ndarray
    # (memory only) the step's static_guides(), for the next step's changed_pixels(); None: the next
    # step recomputes them from the frame (the same values)
    guides: tuple | None = dataclasses.field(default=None, repr=False, compare=False)

    @classmethod
    def at_key(cls, key: KeyFrame) -> "PassState":
        h, w = key.style.shape[:2]
        coords = G.coordinate_map(h, w)
        return cls(key.index, key.style, coords.astype(np.int32), coords.astype(np.float16).astype(np.float32))


@dataclass
class Step:
    """One propagated frame: the candidate image, its per-pixel patch error and the new pass state."""

    index: int
    image: np.ndarray
    error: np.ndarray
    state: PassState
    timings: dict = dataclasses.field(default_factory=dict)  # CPU seconds: "guides", "synthesis"


def _advect_nnf(nnf: np.ndarray, flow_to_prev: np.ndarray) -> np.ndarray:
    from .warping import warp

    moved = warp(np.ascontiguousarray(nnf, dtype=np.float32), flow_to_prev, mode="nearest")
    return np.ascontiguousarray(np.rint(moved).astype(np.int32))


# Largest change of a colour / edge / matte guide value (data units, 0-255) that still counts as
# unchanged. Changes at the level of video noise matter: on vtest (static camera), 6 cost 0.12 dB
# and 3 cost 0.08 dB against searching every pixel; 1 is within 0.02 dB (docs/method.md).
STATIC_TOLERANCE = {"colour": 1, "edge": 1, "matte": 1}


def static_guides(frame: np.ndarray, matte: np.ndarray | None = None) -> tuple:
    """The target guides :func:`changed_pixels` compares: colour, edge and the matte if any (uint8
    or float images; a step keeps them for the next step, a resumed pass recomputes them)."""
    return (frame, G.edge_guide(frame)) + ((matte,) if matte is not None else ())


def changed_pixels(now: tuple, before: tuple, flow_to_prev: np.ndarray, occluded: np.ndarray,
                   radius: int) -> np.ndarray:
    """uint8 H x W: 1 where a patch (``radius``) of this frame's colour, edge or matte (``now``, from
    :func:`static_guides`) differs from the previous frame's (``before``) beyond
    :data:`STATIC_TOLERANCE`, or holds a pixel that moved (flow >= 0.5 px: the advected match comes
    from another pixel, and the positional guide moved) or is occluded; 0 where the previous frame's
    match, carried over unchanged, answers the same search.

    Read from what a resumed pass has too (frames and flows), so that a resumed pass gives the same
    bytes. The temporal guide (the previous output carried along the flow) is left out: its previous
    value is the output before, which a resumed pass no longer has.
    """
    fx, fy = cv2.split(flow_to_prev)
    bad = (np.abs(fx) >= 0.5) | (np.abs(fy) >= 0.5) | (occluded > 0)
    for a, b, tol in zip(now, before, STATIC_TOLERANCE.values()):
        d = cv2.split(cv2.absdiff(a, b))
        bad |= functools.reduce(cv2.max, d) > tol
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    return cv2.dilate(bad.view(np.uint8), kernel)


def build_guides(key: KeyFrame, frame: np.ndarray, positions: np.ndarray, temporal: np.ndarray | None,
                 cfg: PropagationConfig, matte: np.ndarray | None = None, edge: np.ndarray | None = None) -> list:
    """The (source, target, weight) guide list for synthesising ``frame`` from ``key``.

    Guides whose weight is 0 are left out; ``temporal`` None leaves out the temporal guide; with
    ``matte`` (the frame's) and the key's matte, the mattes are a guide too. ``edge``: the frame's
    edge guide when the caller has it already.
    """
    out = []
    if cfg.colour_weight > 0:
        out.append((key.frame, frame, cfg.colour_weight))
    if cfg.edge_weight > 0:
        out.append((key.edge, G.edge_guide(frame) if edge is None else edge, cfg.edge_weight))
    if cfg.positional_weight > 0:
        out.append((key.positional, G.positional_guide(positions), cfg.positional_weight))
    if cfg.temporal_weight > 0 and temporal is not None:
        out.append((key.style, temporal, cfg.temporal_weight))
    if cfg.matte_weight > 0 and matte is not None and key.matte is not None:
        out.append((key.matte[:, :, None], matte[:, :, None], cfg.matte_weight))
    return out


def step(key: KeyFrame, state: PassState, index: int, source: FrameSource, cfg: PropagationConfig,
         threads: int = 0) -> Step:
    """Synthesise frame ``index`` (next to ``state.index``) from ``key``."""
    from .synthesis import synthesize
    from .warping import occlusion

    t0 = time.thread_time()  # CPU seconds of this thread: meaningful while other jobs share the cores
    prev = state.index
    if abs(index - prev) != 1:
        raise ValueError(f"index: frame {index} is not next to the previous frame {prev}")
    frame = source.frame(index)
    to_prev = source.flow(index, prev)
    from_prev = source.flow(prev, index)
    occluded = source.occluded(index, prev) if hasattr(source, "occluded") else occlusion(to_prev, from_prev)
    positions = G.advect_positions(state.positions, to_prev, occluded).astype(np.float16).astype(np.float32)
    temporal = G.temporal_guide(state.output, to_prev)
    matte = source.matte(index) if hasattr(source, "matte") else None
    # the guides the static skip compares (their edge guide is the synthesis's too: built once)
    now = static_guides(frame, matte) if cfg.warm_start == "advect" and cfg.static_skip else None
    guides = build_guides(key, frame, positions, temporal, cfg, matte=matte, edge=None if now is None else now[1])
    region = None
    if matte is not None:
        from .matte import synthesis_region

        region = synthesis_region(matte, cfg.matte_grow + cfg.patch_size // 2)
    active = None
    if cfg.warm_start == "advect":
        init = _advect_nnf(state.nnf, to_prev)
        if now is not None:
            before = state.guides or static_guides(source.frame(prev), source.matte(prev) if matte is not None else None)
            active = changed_pixels(now, before, to_prev, occluded, cfg.patch_size // 2)
    elif cfg.warm_start == "reuse":
        init = state.nnf
    else:
        init = None
    t1 = time.thread_time()
    params = cfg.synthesis_params(seed=cfg.seed * 1_000_003 + index, threads=threads)
    res = synthesize(key.style, guides, params, init_nnf=init, target_mask=region, init_active=active)
    image = res.image
    if cfg.residual_gain > 0:
        image = G.transfer_residual(image, res.nnf, frame, key.frame, key.slopes, cfg.residual_gain)
    if region is not None:  # outside its region the candidate holds the plate: blends and the
        # temporal guide then never see the synthesis's zeros there
        image = np.where(region[:, :, None] > 0, image, frame.astype(image.dtype))
    new_state = PassState(index, image, np.ascontiguousarray(res.nnf, dtype=np.int32), positions, guides=now)
    t2 = time.thread_time()
    return Step(index, image, res.error, new_state, {"guides": t1 - t0, "synthesis": t2 - t1})


def propagate_pass(key: KeyFrame, indices: list[int], source: FrameSource, cfg: PropagationConfig,
                   state: PassState | None = None, threads: int = 0) -> Iterator[Step]:
    """Propagate ``key`` to ``indices`` (consecutive frames walking away from the key), one step each.

    ``state``: resume after an earlier step (default: start at the key frame).
    """
    state = state or PassState.at_key(key)
    for index in indices:
        s = step(key, state, index, source, cfg, threads)
        state = s.state
        yield s
