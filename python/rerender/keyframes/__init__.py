"""Key-frame translation (docs/method.md, section 1): Stable Diffusion + ControlNet with the hierarchical
cross-frame constraints, built on diffusers components.

Modules: ``config`` (KeyframeConfig), ``models`` (loading), ``attention`` (cross-frame attention
processor), ``encoder`` (VAE helpers, fidelity-oriented encoder E*), ``constraints`` (fusions,
AdaIN, windows), ``controls`` (canny, HED), ``families`` (SD 1.x / 2.x / XL: detection, defaults),
``schedulers`` (samplers, trajectory-fraction windows), ``text`` (prompt conditioning per family),
``sampler`` (the sampling loop), ``stage`` (render a clip's
key frames into WORK/keys), ``cli`` (the ``run`` and ``keyframes`` commands).
Importing this package does not import torch; the submodules do.
"""
from __future__ import annotations
