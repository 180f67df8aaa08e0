"""Histogram-preserving blending (Heitz & Neyret, HPG 2018) and the min-error combination of
two propagated candidates, the blending steps of docs/method.md section 3.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .backend import call_native, resolve_backend


def histogram_blend(
    a: np.ndarray,
    b: np.ndarray,
    weight_a: float | np.ndarray,
    reference: np.ndarray | None = None,
    *,
    threads: int = 0,
    backend: str = "auto",
) -> Any:
    """Blend ``a`` and ``b`` per pixel while keeping a histogram, not averaging it away.

    Per channel, each input is mapped to a standard normal variable through its empirical CDF
    (``T(v) = Phi^-1((rank + 0.5) / N)``, ties share their mid-rank), blended with the
    variance-preserving weights ``G = (w_a G_a + w_b G_b) / sqrt(w_a^2 + w_b^2)`` (``w_b = 1 -
    w_a``) and mapped back:

    - with ``reference``: through the reference's inverse CDF, so the result has the
      reference's per-channel histogram (Rerender uses the min-error combination as reference);
    - without: through ``w_a T_a^-1(G) + w_b T_b^-1(G)``, so weight 1 / 0 returns a / b exactly.

    Args:
        a, b: H x W (x C) arrays of one dtype (uint8 or float32) and shape.
        weight_a: weight of ``a`` in [0, 1]: a number or a float32 H x W map.
        reference: optional array of a's dtype and channel count (any size) whose histogram
            the result takes.
        threads: CPU threads, 0 = OpenMP default.
        backend: ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Returns:
        The blend, same shape and dtype as ``a`` (uint8 values rounded).
    """
    which = resolve_backend(backend, a=a, b=b, weight_a=weight_a, reference=reference)
    return call_native("histogram_blend", which, {"a": a, "b": b, "weight_a": weight_a, "reference": reference},
                       threads=threads)


def min_error_combine(
    a: np.ndarray,
    b: np.ndarray,
    error_a: np.ndarray,
    error_b: np.ndarray,
    *,
    threads: int = 0,
    backend: str = "auto",
) -> tuple[Any, Any]:
    """Per pixel, take the candidate with the lower patch error.

    Args:
        a, b: candidate images, same shape and dtype (uint8 or float32).
        error_a, error_b: float32 H x W error maps (e.g. ``Synthesis.error``); NaN is rejected,
            +inf allowed. Ties go to ``a``.
        threads: CPU threads, 0 = OpenMP default.
        backend: ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Returns:
        ``(image, mask)``: the combination (a's shape and dtype) and a uint8 H x W mask, 1 where
        ``a`` was taken (``error_a <= error_b``).
    """
    which = resolve_backend(backend, a=a, b=b, error_a=error_a, error_b=error_b)
    return call_native("min_error_combine", which, {"a": a, "b": b, "error_a": error_a, "error_b": error_b},
                       threads=threads)
