"""Image sequences: which files form a clip and in what order.

A sequence is a folder of images, a printf pattern (``shot/%04d.png``) or a glob
(``shot/*.exr``), sorted naturally by name (``f2`` before ``f10``); the position in that order
is the frame index. Key-frame folders name each image by its zero-based frame index.
"""
from __future__ import annotations

import fractions
import glob
import os
import re
from pathlib import Path

from ..errors import MediaError

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr", ".bmp", ".webp", ".hdr", ".ppm", ".pgm"}
)
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpeg", ".mpg", ".ts", ".m2ts", ".mts",
     ".wmv", ".flv", ".gif", ".3gp", ".ogv", ".mxf"}
)
DEFAULT_SEQUENCE_FPS = fractions.Fraction(24)


def is_video_path(path: str | os.PathLike) -> bool:
    """True when ``path`` has a video-file extension (used to choose video vs folder output)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def natural_key(path: Path) -> list:
    # "frame2" sorts before "frame10"
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


_PRINTF = re.compile(r"%(0?)(\d*)d")


def is_pattern(text: str) -> bool:
    return bool(_PRINTF.search(os.path.basename(text))) or any(c in text for c in "*?[")


def list_sequence(path: str | os.PathLike) -> list[Path]:
    """Frames of an image sequence in order: a folder of images, a printf pattern
    (``shot/%04d.png``) or a glob pattern (``shot/*.exr``). Sorted naturally by name
    (``f2`` before ``f10``); the position in this list is the frame index.
    """
    text = os.fspath(path)
    p = Path(text)
    if p.is_dir():
        files = [f for f in p.iterdir()
                 if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_EXTENSIONS]
        exts = sorted({f.suffix.lower() for f in files})
        if len(exts) > 1:
            raise MediaError(f"{p}: image sequence folder mixes file types {', '.join(exts)}; "
                             "keep one type per folder or pass a pattern such as 'folder/*.png'")
        if not files:
            raise MediaError(f"{p}: folder contains no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        return sorted(files, key=natural_key)
    m = _PRINTF.search(p.name)
    if m:
        folder = p.parent
        if not folder.is_dir():
            raise MediaError(f"{text}: folder {folder} does not exist")
        head, tail = p.name[: m.start()], p.name[m.end():]
        digits = r"\d{%s,}" % m.group(2) if m.group(1) else (r"\d{%s}" % m.group(2) if m.group(2) else r"\d+")
        rx = re.compile(re.escape(head) + "(" + digits + ")" + re.escape(tail) + r"\Z")
        found = [(int(mm.group(1)), f) for f in folder.iterdir() if (mm := rx.match(f.name))]
        if not found:
            raise MediaError(f"{text}: no files match the pattern")
        return [f for _, f in sorted(found)]
    if any(c in text for c in "*?["):
        files = [Path(f) for f in glob.glob(text) if Path(f).is_file()]
        if not files:
            raise MediaError(f"{text}: no files match the pattern")
        return sorted(files, key=natural_key)
    raise MediaError(f"{text}: not a folder or a sequence pattern")


def list_indexed_images(folder: str | os.PathLike) -> dict[int, Path]:
    """Images in ``folder`` whose name stem is a zero-based frame index (``0000.png``, ``17.jpg``).

    Other files (non-images, hidden files, images with non-numeric names) are ignored. Two files
    for one index (``0010.png`` and ``10.jpg``) are an error naming both. Returns index -> path,
    sorted by index.
    """
    p = Path(folder)
    if not p.is_dir():
        raise MediaError(f"{p}: key-frame folder does not exist" if not p.exists()
                         else f"{p}: not a folder")
    found: dict[int, Path] = {}
    for f in p.iterdir():
        if f.name.startswith(".") or f.suffix.lower() not in IMAGE_EXTENSIONS or not f.is_file():
            continue
        if not (f.stem.isascii() and f.stem.isdigit()):
            continue
        idx = int(f.stem)
        if idx in found:
            a, b = sorted([found[idx], f])
            raise MediaError(f"{p}: two files for frame {idx}: {a.name} and {b.name}")
        found[idx] = f
    return dict(sorted(found.items()))

