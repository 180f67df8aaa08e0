"""Pixels on the host's side: clips as the host holds them (numpy frames by host frame number), the
host's depth and component conversions, and :class:`Image`, an image laid out in host memory as the
OpenFX specification describes it (``kOfxImagePropData`` at the lower-left pixel, rows
``kOfxImagePropRowBytes`` apart, which may be negative and padded).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from . import ofx
from . import properties as P
from .properties import PropertySet

if TYPE_CHECKING:
    from .host import Host


@dataclass
class ClipData:
    """A clip as the host holds it: frames (top row first, H x W x C, uint8/uint16/float) by host
    frame number, their frame rate and premultiplication (None: unpremultiplied with an alpha
    channel, else opaque). ``None`` = an unconnected clip."""

    frames: dict[int, np.ndarray]
    fps: float = 24.0
    premult: str | None = None

    @property
    def first(self) -> int:
        return min(self.frames)

    @property
    def last(self) -> int:
        return max(self.frames)

    @property
    def shape(self) -> tuple[int, int, int]:
        f = self.frames[self.first]
        return f.shape[0], f.shape[1], (f.shape[2] if f.ndim == 3 else 1)


DEPTHS = {ofx.DEPTH_BYTE: np.uint8, ofx.DEPTH_SHORT: np.uint16, ofx.DEPTH_HALF: np.float16,
          ofx.DEPTH_FLOAT: np.float32}
DEPTH_OF_DTYPE = {np.dtype(v): k for k, v in DEPTHS.items()}
COMPONENTS_OF_CHANNELS = {4: ofx.COMPONENTS_RGBA, 3: ofx.COMPONENTS_RGB, 1: ofx.COMPONENTS_ALPHA}


def to_float(img: np.ndarray) -> np.ndarray:
    """Pixel values as float32 on the 0..1 scale (integers divided by their maximum)."""
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    if img.dtype == np.uint16:
        return img.astype(np.float32) / 65535.0
    return img.astype(np.float32)


def convert(img: np.ndarray, depth: str, channels: int) -> np.ndarray:
    """The host's conversion of a frame to the depth and component count a clip delivers."""
    dtype = np.dtype(DEPTHS[depth])
    src_c = img.shape[2] if img.ndim == 3 else 1
    if img.ndim == 2:
        img = img[:, :, None]
    if src_c != channels:
        f = to_float(img)
        if channels == 1:
            f = f[:, :, 3:4] if src_c == 4 else (0.2126 * f[:, :, :1] + 0.7152 * f[:, :, 1:2] + 0.0722 * f[:, :, 2:3])
        elif channels == 4:
            rgb = np.repeat(f, 3, axis=2) if src_c == 1 else f[:, :, :3]
            f = np.concatenate([rgb, np.ones_like(rgb[:, :, :1])], axis=2)
        else:
            f = np.repeat(f, 3, axis=2) if src_c == 1 else f[:, :, :3]
        img = f
    if img.dtype == dtype:
        return np.ascontiguousarray(img)
    if dtype.kind == "f":
        return to_float(img).astype(dtype)
    scale = 255.0 if dtype == np.uint8 else 65535.0
    return np.round(np.clip(to_float(img), 0.0, 1.0) * scale).astype(dtype)


class Image:
    """Pixels in host memory laid out as the spec describes, plus the image's property set."""

    def __init__(self, host: "Host", pixels: np.ndarray | None, *, shape=None, dtype=None, components: str,
                 depth: str, row_order: str, row_padding: int, unique_id: str, premult: str, fill=None):
        self.host = host
        if pixels is not None:
            h, w = pixels.shape[:2]
            c = pixels.shape[2] if pixels.ndim == 3 else 1
            dtype = pixels.dtype
        else:
            h, w, c = shape
            dtype = np.dtype(dtype)
        self.h, self.w, self.c, self.dtype = h, w, c, np.dtype(dtype)
        row = w * c * self.dtype.itemsize
        self.stride = row + row_padding
        self.row_order = row_order
        self.buffer = np.full(h * self.stride + 16, 0xCD, dtype=np.uint8)  # padding bytes: 0xCD
        base = self.buffer.ctypes.data
        off = (-base) % 16   # 16-byte alignment, as the image memory suite promises
        self.base = base + off
        self._rows = np.lib.stride_tricks.as_strided(
            self.buffer[off:], shape=(h, row), strides=(self.stride, 1), writeable=True)
        if fill is not None:
            self.write_top_down(np.full((h, w, c), fill, dtype=self.dtype))
        if pixels is not None:
            self.write_top_down(pixels)
        if row_order == "top_down":   # memory holds the top row first: lower-left = last row
            data = self.base + (h - 1) * self.stride
            row_bytes = -self.stride
        else:
            data = self.base
            row_bytes = self.stride
        self.props = PropertySet(host.registry, "image", P.IMAGE)
        self.props.set("OfxImageEffectPropPixelDepth", depth)
        self.props.set("OfxImageEffectPropComponents", components)
        self.props.set("OfxImageEffectPropPreMultiplication", premult)
        self.props.set("OfxImagePropData", data)
        self.props.set("OfxImagePropBounds", [0, 0, w, h])
        self.props.set("OfxImagePropRegionOfDefinition", [0, 0, w, h])
        self.props.set("OfxImagePropRowBytes", row_bytes)
        self.props.set("OfxImagePropUniqueIdentifier", unique_id)

    def _memory_row(self, y_top: int) -> int:
        return y_top if self.row_order == "top_down" else self.h - 1 - y_top

    def write_top_down(self, pixels: np.ndarray) -> None:
        flat = np.ascontiguousarray(pixels.astype(self.dtype, copy=False)).reshape(self.h, -1).view(np.uint8)
        for y in range(self.h):
            self._rows[self._memory_row(y)] = flat[y]

    def read_top_down(self) -> np.ndarray:
        out = np.empty((self.h, self.w * self.c * self.dtype.itemsize), dtype=np.uint8)
        for y in range(self.h):
            out[y] = self._rows[self._memory_row(y)]
        return out.view(self.dtype).reshape(self.h, self.w, self.c).copy()

    def padding_intact(self) -> bool:
        """True when the row padding still holds the host's filler (nothing written past a row's end)."""
        row = self.w * self.c * self.dtype.itemsize
        off = self.base - self.buffer.ctypes.data
        return all(np.all(self.buffer[off + r * self.stride + row: off + (r + 1) * self.stride] == 0xCD)
                   for r in range(self.h))
