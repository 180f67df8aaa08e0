"""Optical flow between frames: pluggable backends and an on-disk cache.

Convention (docs/method.md, section 2): a flow ``flow_ab`` is float32 H x W x 2 (dx, dy) in pixels on a's grid
with ``a(x) ~ b(x + flow_ab(x))``; OpenCV's flow functions use the same convention with
a = previous, b = next.

Backends (``get_flow_backend(name)``):

* ``"dis"`` (default) -- OpenCV's Dense Inverse Search on grey images, preset MEDIUM refined
  down to full resolution: about 0.15 s per 512 x 512 pair on one core, no weights.
* ``"deepflow"`` -- OpenCV contrib's DeepFlow: several times slower, more accurate on large
  and non-rigid motion.

A learned model (RAFT, GMFlow, ...) joins by registering a factory that returns an object with a
``name`` and ``__call__(a, b) -> flow`` -- typically loading user-supplied weights::

    from rerender.flow import register_flow_backend

    class RaftFlow:
        name = "raft"
        def __init__(self, weights): ...            # load the model once
        def __call__(self, a, b): ...               # uint8 RGB H x W x 3 -> float32 H x W x 2

    register_flow_backend("raft", lambda: RaftFlow(weights="raft-things.pth"))

After that ``--flow raft`` / ``get_flow_backend("raft")`` use it, and :class:`FlowCache` keeps its
flows apart from other backends' (files live under the backend's name).
"""
from __future__ import annotations

import os
import threading
import weakref
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from .packing import decode_flow, encode_flow_values
from .recent import Recent

__all__ = [
    "FlowBackend",
    "DISFlow",
    "DeepFlow",
    "FlowCache",
    "register_flow_backend",
    "get_flow_backend",
    "available_flow_backends",
    "check_flow_pair",
    "flow_at_working_size",
]


@runtime_checkable
class FlowBackend(Protocol):
    """Dense optical flow: ``backend(a, b)`` -> flow_{a->b}, float32 H x W x 2 on a's grid."""

    name: str

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray: ...


def check_flow_pair(a: np.ndarray, b: np.ndarray) -> None:
    """Validate two frames for a flow backend: RGB (H x W x 3) or grey, same size; uint8, or float32
    on the 0..255 scale (high-bit-depth frames of the working format)."""
    for name, img in (("a", a), ("b", b)):
        if not isinstance(img, np.ndarray):
            raise ValueError(f"flow input {name}: expected a numpy array, got {type(img).__name__}")
        if img.dtype not in (np.uint8, np.float32) or not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (1, 3))):
            raise ValueError(f"flow input {name}: expected uint8 or float32 H x W x 3 RGB or H x W grey, "
                             f"got {img.dtype} {img.shape}")
        if min(img.shape[:2]) < 8:
            raise ValueError(f"flow input {name}: image {img.shape[1]}x{img.shape[0]} is too small (min 8x8)")
    if a.shape[:2] != b.shape[:2]:
        raise ValueError(f"flow inputs differ in size: a is {a.shape[1]}x{a.shape[0]}, "
                         f"b is {b.shape[1]}x{b.shape[0]}")


def _grey(img: np.ndarray) -> np.ndarray:
    """uint8 grey, what OpenCV's flow methods take (float frames rounded on their 0..255 scale)."""
    if img.dtype != np.uint8:
        img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        return img
    if img.shape[2] == 1:
        return img[:, :, 0]
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


class _PerThread:
    """One OpenCV flow object per thread: their ``calc`` keeps internal buffers and is not
    safe to call concurrently (the propagation job computes flows from several threads)."""

    def __init__(self, make: Callable[[], object]):
        self._make = make
        self._local = threading.local()

    def get(self):
        obj = getattr(self._local, "obj", None)
        if obj is None:
            obj = self._local.obj = self._make()
        return obj


_DIS_PRESETS = {
    # name: (OpenCV preset, finest pyramid level or None = the preset's own)
    "fine": (cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, 0),
    "medium": (cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, None),
    "fast": (cv2.DISOPTICAL_FLOW_PRESET_FAST, None),
    "ultrafast": (cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, None),
}
DEFAULT_DIS_PRESET = "fine"


def _make_dis(preset: str):
    base, finest = _DIS_PRESETS[preset]
    dis = cv2.DISOpticalFlow_create(base)
    if finest is not None:
        dis.setFinestScale(finest)
    return dis


class DISFlow:
    """OpenCV DIS optical flow on grey images.

    Preset ``"fine"`` (default) is OpenCV's MEDIUM run down to full resolution (finest scale 0
    instead of 1): on the Middlebury Motorcycle pair it halves the median error (0.22 vs 0.41 px)
    for about 4x the time (0.2 s vs 0.05 s per 741 x 500 pair on one core). ``"medium"``,
    ``"fast"`` and ``"ultrafast"`` are OpenCV's presets. Non-default presets get their own
    ``name`` (``dis_medium``...) so cached flows are never mixed up.
    """

    def __init__(self, preset: str = DEFAULT_DIS_PRESET):
        if preset not in _DIS_PRESETS:
            raise ValueError(f"DIS preset: {preset!r} is not one of {', '.join(_DIS_PRESETS)}")
        self.preset = preset
        self.name = "dis" if preset == DEFAULT_DIS_PRESET else f"dis_{preset}"
        self._dis = _PerThread(lambda: _make_dis(preset))

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        check_flow_pair(a, b)
        flow = self._dis.get().calc(_grey(a), _grey(b), None)
        return np.ascontiguousarray(flow, dtype=np.float32)


class DeepFlow:
    """OpenCV contrib DeepFlow (Weinzaepfel et al. 2013) on grey images."""

    name = "deepflow"

    def __init__(self):
        if not hasattr(cv2, "optflow"):
            raise ValueError("flow backend 'deepflow' needs opencv-contrib (cv2.optflow is missing)")
        self._df = _PerThread(cv2.optflow.createOptFlow_DeepFlow)

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        check_flow_pair(a, b)
        flow = self._df.get().calc(_grey(a), _grey(b), None)
        return np.ascontiguousarray(flow, dtype=np.float32)


_REGISTRY: dict[str, Callable[[], FlowBackend]] = {"dis": DISFlow, "deepflow": DeepFlow}
# the other DIS presets under the names their backends carry ("dis_medium", ...)
_REGISTRY.update({f"dis_{p}": (lambda p=p: DISFlow(p)) for p in _DIS_PRESETS if p != DEFAULT_DIS_PRESET})


def register_flow_backend(name: str, factory: Callable[[], FlowBackend], *, replace: bool = False) -> None:
    """Make ``get_flow_backend(name)`` return ``factory()``. ``name`` must be a plain identifier
    (it names the cache folder); an existing name needs ``replace=True``."""
    if not (isinstance(name, str) and name.replace("-", "_").isidentifier()):
        raise ValueError(f"flow backend name: {name!r} must be a plain identifier like 'raft'")
    if name in _REGISTRY and not replace:
        raise ValueError(f"flow backend {name!r} is already registered (pass replace=True)")
    _REGISTRY[name] = factory


def available_flow_backends() -> list[str]:
    """Names accepted by :func:`get_flow_backend`."""
    return sorted(_REGISTRY)


def get_flow_backend(name: str | FlowBackend = "dis") -> FlowBackend:
    """The flow backend called ``name`` ("dis", "deepflow", or a registered one); a backend
    object passes through unchanged."""
    if not isinstance(name, str):
        if isinstance(name, FlowBackend):
            return name
        raise ValueError(f"flow backend: expected a name or a FlowBackend, got {type(name).__name__}")
    factory = _REGISTRY.get(name)
    if factory is None:
        raise ValueError(f"flow backend {name!r} is unknown; available: {', '.join(available_flow_backends())}")
    return factory()


def flow_at_working_size(backend: FlowBackend, a: np.ndarray, b: np.ndarray, long_side: int | None) -> np.ndarray:
    """``backend(a, b)`` computed on copies of the frames shrunk (area average) to ``long_side``
    pixels on their long side, then upsampled bilinearly to the frames' size with the vectors
    scaled by the size ratio of each axis; frames within ``long_side`` (or None) go to the backend
    as they are.

    A cheaper flow for large frames (DIS's cost grows with the pixel count), not the propagation
    job's default: on real footage it cost more temporal stability than the job may lose
    (docs/method.md, "Large frames": bigbuckbunny at 1451 x 1080 with DIS at 960 px, warp error
    +8%; at 968 x 720 with 640 px, +6%)."""
    h, w = a.shape[:2]
    if long_side is None or max(h, w) <= long_side:
        return backend(a, b)
    if long_side < 8:
        raise ValueError(f"flow working side: must be >= 8 pixels or None, got {long_side}")
    check_flow_pair(a, b)
    scale = long_side / max(h, w)
    size = (max(8, round(w * scale)), max(8, round(h * scale)))  # (width, height) as cv2 takes it
    small = backend(*(cv2.resize(x, size, interpolation=cv2.INTER_AREA) for x in (a, b)))
    flow = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    flow[:, :, 0] *= w / size[0]
    flow[:, :, 1] *= h / size[1]
    return np.ascontiguousarray(flow, dtype=np.float32)


# Decoded flows (and occlusion masks) kept in memory by a FlowCache: each is read by the two passes
# of its segment and several times by the blend, and decoding a 16-bit PNG costs more than the read.
MEMORY_BYTES = 512 << 20


class FlowCache:
    """Flows between frame pairs, computed once and kept compactly on disk.

    Layout: ``directory/<backend name>/<i>_<j>.npz`` holds flow_{i->j} (absolute frame indices),
    so switching backend never reuses another backend's flows. Files are written atomically
    (temporary file + ``os.replace``): a killed job leaves either a complete file or none.

    Storage is fixed point in steps of 1/32 px in a 16-bit PNG (:func:`rerender.packing.encode_flow`):
    about 1 MB per 1080p flow on real footage (float16 took 8.3 MB), at a precision far below the
    flow's own error. Every flow is returned *after* this round trip, also when freshly computed,
    so a resumed job (or another machine of a cluster) sees bit-identical flows. A cached file
    whose size differs from the frames given (working size changed) or that cannot be read is
    recomputed. :meth:`drop` removes flows a finished job no longer needs.

    ``frames``: optional callback ``index -> uint8 RGB frame`` used when a flow must be computed
    and the frames were not passed to :meth:`get`. ``working_side``: flows of frames larger than
    this are computed at this long side (:func:`flow_at_working_size`; None: full size).

    The last ``memory_bytes`` of flows read or computed stay in memory (read-only arrays, the same
    values as the files'): the passes and the blend of a segment read each flow several times.
    """

    def __init__(self, directory: str | os.PathLike, backend: str | FlowBackend = "dis",
                 frames: Callable[[int], np.ndarray] | None = None, memory_bytes: int | None = None,
                 working_side: int | None = None):
        self.backend = get_flow_backend(backend)
        self.working_side = working_side
        self.directory = Path(directory) / self.backend.name
        self.frames = frames
        self._memory = Recent(MEMORY_BYTES if memory_bytes is None else memory_bytes)

    def path(self, i: int, j: int) -> Path:
        """File that holds flow_{i->j}."""
        return self.directory / f"{int(i):06d}_{int(j):06d}.npz"

    def _load(self, i: int, j: int, shape: tuple[int, int] | None) -> np.ndarray | None:
        from .files import DamagedEntry, load_npz, report_damaged

        path = self.path(i, j)
        try:
            st = os.stat(path)
        except OSError:
            return None
        stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
        kept = self._memory.get((i, j))  # valid while the file is the one it was read from
        if kept is not None and kept[1] == stamp:
            data = kept[0]
        else:
            try:
                data = decode_flow(load_npz(path))
            except DamagedEntry as e:  # recomputed
                report_damaged(e.path)
                return None
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                return None
            self._memory.put((i, j), (data, stamp))
        if shape is not None and data.shape[:2] != tuple(shape):
            return None
        return data

    def _save(self, i: int, j: int, flow: np.ndarray) -> np.ndarray:
        """Store ``flow`` and return it as it reads back."""
        from .files import save_npz

        entries, data = encode_flow_values(flow)
        path = self.path(i, j)
        save_npz(path, **entries)
        st = os.stat(path)
        self._memory.put((i, j), (data, (st.st_size, st.st_mtime_ns, st.st_ino)))
        return data

    def drop(self, pairs: Iterable[tuple[int, int]]) -> int:
        """Delete the stored flows of ``pairs`` ((i, j): flow_{i->j}); returns how many were stored."""
        from .files import remove_entry

        removed = 0
        for i, j in pairs:
            path = self.path(i, j)
            self._memory.pop((i, j))
            self._memory.pop(("occluded", i, j))
            if path.exists():
                removed += 1
            remove_entry(path)
        return removed

    def get(self, i: int, j: int, frame_i: np.ndarray | None = None,
            frame_j: np.ndarray | None = None) -> np.ndarray:
        """flow_{i->j} (float32 H x W x 2), from the cache or computed (and stored)."""
        shape = frame_i.shape[:2] if frame_i is not None else None
        cached = self._load(i, j, shape)
        if cached is not None:
            return cached
        if frame_i is None or frame_j is None:
            if self.frames is None:
                raise ValueError(f"flow {i}->{j} is not cached in {self.directory} and no frames "
                                 "were given to compute it")
            frame_i = self.frames(i) if frame_i is None else frame_i
            frame_j = self.frames(j) if frame_j is None else frame_j
        return self._compute(i, j, frame_i, frame_j)

    def _compute(self, i: int, j: int, frame_i: np.ndarray, frame_j: np.ndarray) -> np.ndarray:
        flow = flow_at_working_size(self.backend, frame_i, frame_j, self.working_side)
        if flow.shape != (*frame_i.shape[:2], 2):
            raise ValueError(f"flow backend {self.backend.name!r} returned shape {flow.shape}, "
                             f"expected {(*frame_i.shape[:2], 2)}")
        return self._save(i, j, flow)

    def occluded(self, i: int, j: int) -> np.ndarray:
        """Occlusion mask on i's grid of the pair (i, j) (:func:`rerender.occlusion` of flow_{i->j}
        and flow_{j->i}; uint8, 1 = occluded), kept in memory with the flows: a pass step and the
        blend of its segment ask for the same masks."""
        from .warping import occlusion

        fwd, bwd = self.get(i, j), self.get(j, i)
        kept = self._memory.get(("occluded", i, j))  # valid for the very flows it came from (weak
        if kept is not None and kept[1]() is fwd and kept[2]() is bwd:  # refs: it never pins them)
            return kept[0]
        mask = occlusion(fwd, bwd)
        self._memory.put(("occluded", i, j), (mask, weakref.ref(fwd), weakref.ref(bwd)))
        return mask

    def pair(self, i: int, frame_i: np.ndarray | None = None,
             frame_next: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(forward, backward) flows of frame i: flow_{i->i+1} and flow_{i+1->i}."""
        return self.get(i, i + 1, frame_i, frame_next), self.get(i + 1, i, frame_next, frame_i)

    def occlusion(self, i: int, frame_i: np.ndarray | None = None,
                  frame_next: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Occlusion masks of the pair (i, i+1) from the forward-backward check
        (:func:`rerender.occlusion`, UnFlow constants): (mask on i's grid, mask on (i+1)'s
        grid), uint8, 1 = occluded."""
        from .warping import occlusion

        fwd, bwd = self.pair(i, frame_i, frame_next)
        return occlusion(fwd, bwd), occlusion(bwd, fwd)

    def precompute(self, frames: Iterable[tuple[int, np.ndarray]],
                   progress: Callable[[int], None] | None = None) -> int:
        """Fill the cache with forward and backward flows of consecutive frames.

        ``frames`` yields ``(index, frame)`` in increasing index order (e.g. streamed from
        :func:`rerender.media.read_frames`); only two frames are held at a time. Pairs already
        cached are skipped. ``progress(k)`` is called after each pair. Returns the number of
        flows computed.
        """
        computed = 0
        prev: tuple[int, np.ndarray] | None = None
        for idx, frame in frames:
            if prev is not None:
                if idx != prev[0] + 1:
                    raise ValueError(f"precompute: frame indices must be consecutive, got {prev[0]} then {idx}")
                shape = frame.shape[:2]
                for a, b, fa, fb in ((prev[0], idx, prev[1], frame), (idx, prev[0], frame, prev[1])):
                    if self._load(a, b, shape) is None:
                        self._compute(a, b, fa, fb)
                        computed += 1
                if progress is not None:
                    progress(idx)
            prev = (idx, frame)
        return computed
