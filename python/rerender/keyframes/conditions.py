"""The control conditions: ONE table of what a ControlNet can follow in each key frame.

Everything that names a condition derives from :data:`CONDITIONS`: the config's ``Control`` type,
its default and the default ControlNet per condition (``config.py``), the CLI's ``--control``
choices, the stage's condition images (:func:`condition_images`) and the Blender add-on's menu
(``blender_addon/settings.py`` keeps a copy of :func:`addon_items`, checked by
tests/test_addon_constants.py). A new condition is one entry here plus its implementation.

Importing this module does not import torch (the config and the CLI read it); the implementations
in ``controls.py`` are imported when a condition image is made.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import numpy as np


@dataclasses.dataclass(frozen=True)
class ConditionContext:
    """What a condition needs beside the frame: the options, the device, the models' components (their
    offload policy then holds the annotators too) and (``images`` only) its folder of condition images."""

    cfg: object  # KeyframeConfig
    device: str
    components: object = None  # models.Components, or None: annotators cached per device
    folder: Optional[str] = None

    @property
    def offloaded(self) -> bool:
        return self.components is not None and self.components.offload != "none"


@dataclasses.dataclass(frozen=True)
class ConditionType:
    name: str
    label: str
    help: str
    make: Callable[[ConditionContext, np.ndarray, int], np.ndarray]
    """(context, uint8 RGB frame, frame index) -> uint8 H x W x 3 condition image."""
    default_controlnet: Optional[str] = None
    """Hub id of the ControlNet trained on it (None: the user must give one)."""
    needs: Optional[str] = None
    """The option that must be set for it (e.g. ``depth_model``), else None."""
    in_addon: bool = False
    """Offered by the Blender add-on's menu (conditions that need nothing but the frame)."""


def _canny(ctx: ConditionContext, frame: np.ndarray, index: int) -> np.ndarray:
    from .controls import canny

    return canny(frame, ctx.cfg.canny_low, ctx.cfg.canny_high)


def _hed(ctx: ConditionContext, frame: np.ndarray, index: int) -> np.ndarray:
    from .controls import hed, hed_for

    return hed(frame, ctx.device, hed_for(ctx.components) if ctx.offloaded else None)


def _depth(ctx: ConditionContext, frame: np.ndarray, index: int) -> np.ndarray:
    from .controls import depth_estimator, depth_estimator_for

    cfg = ctx.cfg
    if ctx.offloaded:
        return depth_estimator_for(ctx.components, cfg.depth_model, cfg.allow_pickle)(frame)
    return depth_estimator(cfg.depth_model, cfg.allow_pickle, ctx.device)(frame)


def _images(ctx: ConditionContext, frame: np.ndarray, index: int) -> np.ndarray:
    from .controls import load_condition_image

    return load_condition_image(ctx.folder, index, (frame.shape[1], frame.shape[0]))


CONDITIONS: dict[str, ConditionType] = {c.name: c for c in (
    ConditionType("hed", "HED", "Soft HED edges of the input frame (the reference default)", _hed,
                  default_controlnet="lllyasviel/sd-controlnet-hed", in_addon=True),
    ConditionType("canny", "Canny", "Canny edges of the input frame", _canny,
                  default_controlnet="lllyasviel/sd-controlnet-canny", in_addon=True),
    ConditionType("depth", "Depth", "Depth map of the input frame from a user-supplied depth estimator", _depth,
                  default_controlnet="lllyasviel/sd-controlnet-depth", needs="depth_model"),
    ConditionType("images", "Images", "The user's own condition images, NNNN.png per frame", _images,
                  needs="control_images"),
)}

NAMES: tuple[str, ...] = tuple(CONDITIONS)
DEFAULT = "hed"  # the paper's condition

DEFAULT_CONTROLNETS: dict[str, str] = {c.name: c.default_controlnet for c in CONDITIONS.values()
                                       if c.default_controlnet}


def addon_items() -> list[tuple[str, str, str]]:
    """The Blender add-on's EnumProperty items (its copy is checked against these)."""
    return [(c.name, c.label, c.help) for c in CONDITIONS.values() if c.in_addon]


def condition_images(cfg, frame: np.ndarray, index: int, device: str, components=None) -> list[np.ndarray]:
    """The condition image of each of ``cfg.control`` for input frame ``index`` (``images`` conditions
    take the folders of ``cfg.control_images`` in order). ``components``: the models they go with; their
    offload policy then covers the annotators too."""
    folders = iter(cfg.control_images)
    out = []
    for name in cfg.control:
        folder = next(folders) if CONDITIONS[name].needs == "control_images" else None
        out.append(CONDITIONS[name].make(ConditionContext(cfg, device, components, folder), frame, index))
    return out
