"""Colour management: from a plate's colour space to the display-referred working space that
synthesis and diffusion see, and back for the output, so that unrestyled pixels round-trip.

Both stages of the method work on images as a viewer sees them (diffusion was trained on sRGB
pictures; patch errors should weigh what the eye sees), so scene-linear plates are encoded first:

- built in (no configuration): scene-linear Rec.709 <-> the sRGB transfer curve, extended beyond
  [0, 1] (a power curve above 1, mirrored below 0) so that highlights and negative values survive
  the round trip instead of being clipped;
- OpenColorIO (the VFX standard; ``--ocio CONFIG`` or ``$OCIO``, any config file or a built-in
  ``ocio://`` URI, ``--colorspace NAME`` for the plate): the config's processor from the plate's
  colour space to its ``color_picking`` role (a display-referred space meant for picking and
  painting colours; ``texture_paint`` when missing), and the inverse processor back.

Display-referred sources (8/16-bit PNG, TIFF, JPEG, video) are their own working space.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import MediaError

WORKING_ROLES = ("color_picking", "texture_paint")


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Scene-linear -> sRGB-encoded, extended: the standard curve on [0, 1], its power segment
    continued above 1 and mirrored below 0 (invertible everywhere)."""
    x = np.asarray(linear, dtype=np.float32)
    a = np.abs(x)
    enc = np.where(a <= 0.0031308, 12.92 * a, 1.055 * np.power(a, 1.0 / 2.4) - 0.055)
    return (np.sign(x) * enc).astype(np.float32)


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    """The inverse of :func:`srgb_encode`."""
    x = np.asarray(encoded, dtype=np.float32)
    a = np.abs(x)
    lin = np.where(a <= 0.04045, a / 12.92, np.power((a + 0.055) / 1.055, 2.4))
    return (np.sign(x) * lin).astype(np.float32)


class ColourSpace:
    """A plate's colour space: ``to_working`` / ``from_working`` convert float32 RGB (H x W x 3,
    0..1 nominal range) between it and the display-referred working space."""

    name = "display"

    def to_working(self, rgb: np.ndarray) -> np.ndarray:
        return np.asarray(rgb, dtype=np.float32)

    def from_working(self, rgb: np.ndarray) -> np.ndarray:
        return np.asarray(rgb, dtype=np.float32)


class SceneLinearSRGB(ColourSpace):
    """Scene-linear Rec.709 primaries, encoded with the extended sRGB curve (the built-in default)."""

    name = "linear Rec.709 -> sRGB (built in)"

    def to_working(self, rgb: np.ndarray) -> np.ndarray:
        return srgb_encode(rgb)

    def from_working(self, rgb: np.ndarray) -> np.ndarray:
        return srgb_decode(rgb)


@dataclass
class OCIOSpace(ColourSpace):
    """A colour space of an OpenColorIO config and the config's display-referred working space."""

    config_path: str
    colorspace: str
    working: str
    _forward: Any = None
    _inverse: Any = None

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"{self.colorspace} -> {self.working} (OCIO {self.config_path})"

    def _apply(self, cpu, rgb: np.ndarray) -> np.ndarray:
        out = np.ascontiguousarray(rgb, dtype=np.float32).copy()
        cpu.applyRGB(out)
        return out

    def to_working(self, rgb: np.ndarray) -> np.ndarray:
        return self._apply(self._forward, rgb)

    def from_working(self, rgb: np.ndarray) -> np.ndarray:
        return self._apply(self._inverse, rgb)


def ocio_space(config: str, colorspace: str | None = None, working: str | None = None) -> OCIOSpace:
    """The OCIO colour space ``colorspace`` (default: the config's ``scene_linear`` role) of
    ``config`` (a file, or a built-in ``ocio://...`` URI), with processors to and from the working
    space ``working`` (default: the ``color_picking`` role). Errors name the config and the space."""
    try:
        import PyOpenColorIO as OCIO
    except ImportError:
        raise MediaError('--ocio: colour management needs OpenColorIO: pip install "rerender[ocio]"') from None
    try:
        cfg = (OCIO.Config.CreateFromBuiltinConfig(config[len("ocio://"):]) if config.startswith("ocio://")
               else OCIO.Config.CreateFromFile(config))
    except Exception as e:  # OCIO raises its own exception type for unreadable configs
        raise MediaError(f"{config}: cannot load the OpenColorIO config ({e})") from None
    names = [cs.getName() for cs in cfg.getColorSpaces()]

    def resolve(name: str | None, roles: tuple[str, ...], what: str) -> str:
        if name is None:
            for role in roles:
                if cfg.hasRole(role):
                    return cfg.getRoleColorSpace(role)
            raise MediaError(f"{config}: the config has no {' or '.join(roles)} role; name the {what} explicitly")
        found = cfg.getColorSpace(name)  # names, aliases and roles
        if found is None:
            raise MediaError(f"{config}: no colour space {name!r} (the {what}); it has {', '.join(names[:12])}"
                             + (" ..." if len(names) > 12 else ""))
        return found.getName()

    src = resolve(colorspace, ("scene_linear",), "plate's colour space (--colorspace)")
    dst = resolve(working, WORKING_ROLES, "working colour space")
    try:
        fwd = cfg.getProcessor(src, dst).getDefaultCPUProcessor()
        inv = cfg.getProcessor(dst, src).getDefaultCPUProcessor()
    except Exception as e:
        raise MediaError(f"{config}: no transform between {src!r} and {dst!r} ({e})") from None
    return OCIOSpace(config, src, dst, fwd, inv)


def colour_space_for(is_float: bool, ocio: str | None = None, colorspace: str | None = None) -> ColourSpace:
    """The colour space of a plate. Float sources (EXR, HDR) are scene-linear: through OCIO when a
    config is given (``ocio`` or ``$OCIO``; ``colorspace`` default: its scene_linear role), else the
    built-in sRGB curve. Integer sources are display-referred unless ``colorspace`` names their space
    in an OCIO config."""
    if ocio is not None and not ocio.startswith("ocio://") and not os.path.isfile(ocio):
        raise MediaError(f"{ocio}: cannot load the OpenColorIO config (--ocio): no such file")
    config = ocio or os.environ.get("OCIO")
    if colorspace is not None and not config:
        raise MediaError("--colorspace: naming a colour space needs an OpenColorIO config (--ocio CONFIG or $OCIO)")
    if config and (is_float or colorspace is not None):
        return ocio_space(config, colorspace)
    return SceneLinearSRGB() if is_float else ColourSpace()
