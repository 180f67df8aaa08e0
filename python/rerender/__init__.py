"""rerender: zero-shot text-guided video-to-video translation (the method: docs/method.md).

Key frames are rendered by Stable Diffusion + ControlNet with cross-frame constraints
(``rerender.keyframes``); every other frame is propagated from them by guided PatchMatch and
temporal-aware, histogram-preserving blending (the native core, ``rerender._native``).
``rerender.translate`` / ``rerender.propagate`` run a whole job (``rerender.pipeline``).

The native building blocks are importable from the top level; heavy modules (torch, diffusers)
load only when used.
"""
from __future__ import annotations

import importlib
import os

# OpenMP threads that spin while waiting make 2 threads slower than 1 on a busy machine (measured
# 1.5 s vs 0.9 s per 512x512 synthesis); our kernels have few barriers, so passive waiting costs
# little. Read once when libgomp loads, so set before anything imports it; a user's value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access)
_EXPORTS = {
    "synthesize": "synthesis",
    "Synthesis": "synthesis",
    "SynthesisParams": "synthesis",
    "warp": "warping",
    "occlusion": "warping",
    "histogram_blend": "histblend",
    "min_error_combine": "histblend",
    "backends": "backend",
    "propagate": "pipeline",
    "translate": "pipeline",
    "render_keyframes": "pipeline",
    "JobConfig": "job",
    "PropagationConfig": "passes",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rerender' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
