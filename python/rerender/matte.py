"""Mattes: which part of each frame to restyle (white = restyle, black = keep the plate).

A matte is a video, an image sequence or a single image (one matte for every frame). An image with
an alpha channel gives its alpha; otherwise its luminance. It must have the plate's aspect ratio and,
unless it is a single image, the plate's frame count; it is resized to the working size.

Inside the job the matte is used three ways: propagation synthesises only where the matte (grown by
the patch radius and the feather) is set, and sees it as a guide, so that patches from inside the
key's matte fill the inside of the frame's; the diffusion stage keeps the unmatted region from the
input (masked SDEdit); the output is composited over the plate with a feathered edge, or written with
the matte as alpha.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import media
from .errors import JobError


def _grey(rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """A source image as a float32 matte in [0, 1]: its alpha if it has one, else its luminance."""
    src = alpha if alpha is not None else rgb
    if src.dtype == np.uint8:
        scale = 255.0
    elif src.dtype == np.uint16:
        scale = 65535.0
    else:
        scale = 1.0
    f = src.astype(np.float32) / np.float32(scale)
    if f.ndim == 3:
        f = f @ np.float32([0.2126, 0.7152, 0.0722])  # Rec.709 luminance
    return np.clip(np.nan_to_num(f), 0.0, 1.0)


@dataclass
class MatteSource:
    """A matte file or clip, checked against the plate it belongs to."""

    path: Path
    info: media.MediaInfo
    single: bool

    @classmethod
    def open(cls, path: str | os.PathLike, plate: media.MediaInfo) -> "MatteSource":
        p = Path(path)
        try:
            info = media.probe(p)
        except media.MediaError as e:
            raise JobError(f"--matte: {e}") from None
        single = info.is_sequence and info.frame_count == 1 and p.is_file()
        if not single and info.frame_count != plate.frame_count:
            raise JobError(f"{p}: the matte has {info.frame_count} frames but the input {plate.path} has "
                           f"{plate.frame_count}; give one matte frame per input frame, or a single image")
        if abs(info.width * plate.height - info.height * plate.width) > 0.01 * info.height * plate.width:
            raise JobError(f"{p}: the matte is {info.width}x{info.height}, which does not have the aspect ratio of "
                           f"the input ({plate.width}x{plate.height})")
        return cls(p, info, single)

    def frames(self, indices: range, hw: tuple[int, int]):
        """(index, uint8 H x W matte at the working size) for ``indices``, streamed."""
        if self.single:
            m = self._at(0, hw)
            for i in indices:
                yield i, m
            return
        if self.info.is_sequence:
            for i in indices:
                yield i, self._at(i, hw)
            return
        for i, rgb in zip(indices, media.read_frames(self.path, frames=slice(indices.start, indices.stop))):
            yield i, _to_u8(media.resize_to(_grey(rgb, None), hw))

    def _at(self, i: int, hw: tuple[int, int]) -> np.ndarray:
        rgb, alpha = media.read_plate(self.info.files[i])
        return _to_u8(media.resize_to(_grey(rgb, alpha), hw))


def _to_u8(m: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.clip(np.rint(m * 255.0), 0, 255).astype(np.uint8))


def feather(matte: np.ndarray, px: float) -> np.ndarray:
    """A uint8 matte as float32 [0, 1], its edge softened by a Gaussian of ``px`` pixels (sigma px/2)."""
    m = matte.astype(np.float32) / np.float32(255.0)
    if px > 0:
        m = cv2.GaussianBlur(m, (0, 0), px / 2.0, borderType=cv2.BORDER_REPLICATE)
    return np.clip(m, 0.0, 1.0)


def synthesis_region(matte: np.ndarray, grow: int) -> np.ndarray:
    """Where propagation synthesises: the matte's support grown by ``grow`` pixels (uint8 0/1), so
    that a feathered edge blends into synthesised texture, not into nothing."""
    region = (matte > 0).astype(np.uint8)
    if grow > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        region = cv2.dilate(region, k)
    return region


def composite(restyled: np.ndarray, plate: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``weight * restyled + (1 - weight) * plate`` in the arrays' dtype; where the weight is 0 the
    plate's pixels come back exactly, where it is 1 the restyled ones."""
    w = weight[:, :, None]
    out = plate.astype(np.float32) + w * (restyled.astype(np.float32) - plate.astype(np.float32))
    out = np.where(w <= 0, plate, np.where(w >= 1, restyled, out))
    if plate.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if plate.dtype == np.uint16:
        return np.clip(np.rint(out), 0, 65535).astype(np.uint16)
    return out.astype(plate.dtype)
