"""Backward warping by optical flow and the forward-backward occlusion check.

Flow convention (docs/method.md, section 2): ``flow_ab`` is float32 H x W x 2 (dx, dy) on a's grid with
a(x) ~ b(x + flow_ab(x)).
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np

from .backend import call_native, resolve_backend

WarpMode = Literal["bilinear", "nearest"]


def warp(
    image: np.ndarray,
    flow: np.ndarray,
    mode: WarpMode = "bilinear",
    *,
    return_valid: bool = False,
    threads: int = 0,
    backend: str = "auto",
) -> Any:
    """Backward-warp ``image`` (of frame b) to frame a: ``out(x) = image(x + flow(x))``.

    Args:
        image: H x W or H x W x C array, uint8 or float32, any channel count (images, flows,
            masks).
        flow: float32 H x W x 2 flow a -> b on a's grid, same H x W as ``image``, finite (of any
            size: positions beyond the frame take its nearest border pixel).
        mode: ``"bilinear"`` (uint8 rounded to nearest) or ``"nearest"`` (keeps exact values:
            use it for masks and labels).
        return_valid: also return a uint8 H x W map, 1 where ``x + flow(x)`` lies inside the
            frame ``[0, W-1] x [0, H-1]`` (elsewhere the sample was clamped to the border).
        threads: CPU threads, 0 = OpenMP default.
        backend: ``"auto"``, ``"cpu"`` or ``"cuda"`` (see ``rerender.backend``).

    Returns:
        The warped array (same shape and dtype as ``image``), or ``(warped, valid)``.
    """
    which = resolve_backend(backend, image=image, flow=flow)
    return call_native("warp", which, {"image": image, "flow": flow}, mode, return_valid, threads=threads)


def occlusion(
    flow_ab: np.ndarray,
    flow_ba: np.ndarray,
    alpha1: float = 0.01,
    alpha2: float = 0.5,
    *,
    threads: int = 0,
    backend: str = "auto",
) -> Any:
    """Forward-backward occlusion mask on a's grid (UnFlow's check, plain norms).

    A pixel x is occluded (1) when ``x + f(x)`` leaves the frame ``[0, W-1] x [0, H-1]`` or
    ``|f(x) + b(x + f(x))| > alpha1 (|f(x)| + |b(x + f(x))|) + alpha2`` with ``f = flow_ab`` and
    ``b = flow_ba`` sampled bilinearly.

    Args:
        flow_ab: float32 H x W x 2 forward flow (a -> b).
        flow_ba: float32 H x W x 2 backward flow (b -> a), same size.
        alpha1: relative tolerance in [0, 1] (default 0.01).
        alpha2: absolute tolerance in pixels in [0, 1e4] (default 0.5).
        threads: CPU threads, 0 = OpenMP default.
        backend: ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Returns:
        uint8 H x W mask, 1 = occluded.
    """
    which = resolve_backend(backend, flow_ab=flow_ab, flow_ba=flow_ba)
    return call_native("occlusion", which, {"flow_ab": flow_ab, "flow_ba": flow_ba}, alpha1, alpha2,
                       threads=threads)
