"""What each file format is: the one table that readers, writers, the job's output checks and the
Blender add-on (through a copy checked by tests/test_addon_constants.py) consult.

A new format is a row here plus, where it needs one, its encoder in :mod:`.images` or
:mod:`.video`. Image rows: the pixel types :func:`rerender.media.write_image` writes to it (none:
read only) and whether its files carry an alpha channel. Video rows: the encoders to try in order
(the first this PyAV build has) and the muxer to name when the extension alone is ambiguous.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Format:
    extension: str
    kind: Literal["image", "video"]
    depths: tuple[str, ...] = ()
    """Pixel types that can be written (images; video is encoded from uint8 RGB)."""
    alpha: bool = False
    """Files of this format can carry an alpha channel (image outputs keep it)."""
    codecs: tuple[str, ...] = ()
    """Video encoders in order of preference."""
    muxer: str | None = None
    """The container format to name explicitly (None: chosen by the extension)."""


_H264 = ("libx264", "libopenh264", "h264", "mpeg4", "mjpeg")
_U8_U16 = ("uint8", "uint16")


def _image(ext: str, depths: tuple[str, ...] = ("uint8",), alpha: bool = False) -> Format:
    return Format(ext, "image", depths, alpha)


def _video(ext: str, codecs: tuple[str, ...] = _H264, muxer: str | None = None) -> Format:
    return Format(ext, "video", ("uint8",), False, codecs, muxer)


FORMATS: dict[str, Format] = {f.extension: f for f in (
    _image(".png", _U8_U16, alpha=True),
    _image(".tif", ("uint8", "uint16", "float32"), alpha=True),
    _image(".tiff", ("uint8", "uint16", "float32"), alpha=True),
    _image(".exr", ("float16", "float32"), alpha=True),
    _image(".jpg"), _image(".jpeg"), _image(".bmp"), _image(".webp"),
    _image(".ppm", _U8_U16),
    _image(".pgm", ()), _image(".hdr", ()),  # read only (PGM holds grey only; outputs are RGB)
    _video(".mp4"), _video(".m4v"), _video(".mov"), _video(".avi"), _video(".wmv"), _video(".flv"),
    _video(".mxf"),
    _video(".mkv", muxer="matroska"),
    _video(".webm", ("libvpx-vp9", "libvpx", "libaom-av1")),
    _video(".mpeg", ("mpeg2video", "mpeg1video"), "mpeg"), _video(".mpg", ("mpeg2video", "mpeg1video"), "mpeg"),
    _video(".ts", muxer="mpegts"), _video(".m2ts", muxer="mpegts"), _video(".mts", muxer="mpegts"),
    _video(".gif", ("gif",)),
    _video(".3gp", muxer="3gp"), _video(".ogv", muxer="ogg"),
)}

IMAGE_EXTENSIONS = frozenset(e for e, f in FORMATS.items() if f.kind == "image")
VIDEO_EXTENSIONS = frozenset(e for e, f in FORMATS.items() if f.kind == "video")
ALPHA_EXTENSIONS = frozenset(e for e, f in FORMATS.items() if f.alpha)


def format_of(extension: str) -> Format | None:
    """The row of ``extension`` (any case, with its dot), or None for an unknown one."""
    return FORMATS.get(extension.lower())


def writable_depths(extension: str) -> tuple[str, ...]:
    """The pixel types an image of ``extension`` can be written at (empty: not writable)."""
    f = format_of(extension)
    return f.depths if f is not None and f.kind == "image" else ()


def holds_alpha(extension: str) -> bool:
    f = format_of(extension)
    return f is not None and f.alpha
