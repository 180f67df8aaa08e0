"""Image sequences: which files form a clip and in what order.

A sequence is a folder of images, a printf pattern (``shot/%04d.png``) or a glob
(``shot/*.exr``), sorted naturally by name (``f2`` before ``f10``); the position in that order
is the frame index. Key-frame folders name each image by its zero-based frame index.
"""
from __future__ import annotations

import dataclasses
import fractions
import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import MediaError
from ..files import frame_name
from .formats import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

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


def list_indexed_images(folder: str | os.PathLike, prefix: str = "") -> dict[int, Path]:
    """Images in ``folder`` named by a frame number: ``0000.png``, ``17.jpg``, or ``prefix`` + digits
    (``shot_v001.1001.png`` with prefix ``shot_v001.``: key frames named like their plate).

    Other files (non-images, hidden files, other names) are ignored. Two files for one number
    (``0010.png`` and ``10.jpg``) are an error naming both. Returns number -> path, sorted.
    """
    p = Path(folder)
    if not p.is_dir():
        raise MediaError(f"{p}: key-frame folder does not exist" if not p.exists()
                         else f"{p}: not a folder")
    found: dict[int, Path] = {}
    for f in p.iterdir():
        if f.name.startswith(".") or f.suffix.lower() not in IMAGE_EXTENSIONS or not f.is_file():
            continue
        stem = f.stem[len(prefix):] if prefix and f.stem.startswith(prefix) else f.stem
        if not (stem.isascii() and stem.isdigit()):
            continue
        idx = int(stem)
        if idx in found:
            a, b = sorted([found[idx], f])
            raise MediaError(f"{p}: two files for frame {idx}: {a.name} and {b.name}")
        found[idx] = f
    return dict(sorted(found.items()))


# --------------------------------------------------------------------------------------------
# frame numbers in file names (VFX sequences: shot_v001.1001.exr ... shot_v001.1100.exr)

@dataclass(frozen=True)
class Numbering:
    """How a sequence's files are numbered: ``prefix`` + number zero-padded to ``padding`` digits +
    ``suffix`` (the rest of the name, extension included); ``numbers`` per file, in order."""

    prefix: str
    padding: int
    suffix: str
    numbers: tuple[int, ...]

    def name(self, number: int, suffix: str | None = None) -> str:
        return f"{self.prefix}{number:0{self.padding}d}{self.suffix if suffix is None else suffix}"

    def renamed(self, tag: str = "_rerender") -> "Numbering":
        """The same numbering with ``tag`` before the separator of the prefix (``shot_v001.`` ->
        ``shot_v001_rerender.``); names that are only a number stay as they are."""
        if not self.prefix:
            return self
        base = self.prefix.rstrip("._-")
        return dataclasses.replace(self, prefix=base + tag + self.prefix[len(base):])


def sequence_numbering(files: list[Path] | tuple[Path, ...]) -> Numbering | None:
    """The frame-number field of a sequence's names: the one run of digits that changes from file to
    file (``p_0007_v2.png``: 0007; with a single file, the last run), the rest of every name the same
    and the numbers increasing; None when the names do not follow one numbering (the files are then
    numbered by their position)."""
    split = [re.split(r"(\d+)", f.name) for f in files]
    if not split or len({len(t) for t in split}) != 1 or len(split[0]) < 3:
        return None
    varying = [k for k in range(1, len(split[0]), 2) if len({t[k] for t in split}) > 1]
    fixed = [k for k in range(0, len(split[0])) if k not in varying]
    if len(varying) > 1 or any(len({t[k] for t in split}) > 1 for k in fixed):
        return None
    # the number: the varying run, else (one file) the last run before the extension
    k = varying[0] if varying else len(split[0]) - 2
    first = split[0]
    numbers = tuple(int(t[k]) for t in split)
    if any(b <= a for a, b in zip(numbers, numbers[1:])):
        return None
    widths = {len(t[k]) for t in split}
    padding = widths.pop() if len(widths) == 1 else 1  # unpadded numbers have varying widths
    return Numbering("".join(first[:k]), padding, "".join(first[k + 1:]), numbers)


def parse_output_pattern(path: str | os.PathLike) -> tuple[Path, str, int, str] | None:
    """``out/shot.####.exr`` or ``out/shot.%04d.exr`` -> (folder, prefix, padding, suffix); None for a
    plain folder or file name."""
    p = Path(path)
    m = re.search(r"#+", p.name) or _PRINTF.search(p.name)
    if m is None:
        return None
    padding = len(m.group(0)) if m.group(0).startswith("#") else int(m.group(2) or 1)
    return p.parent, p.name[:m.start()], padding, p.name[m.end():]


_FRAME_FIELD = re.compile(r"#+|%0?\d*d")
_OTHER_FIELD = re.compile(r"%[-+ #0]*\d*(?:\.\d+)?[A-Za-z]")


def check_output_name(output: str | os.PathLike, frame_count: int) -> None:
    """Refuse an output name that cannot be what the user meant (:class:`MediaError` naming it): an
    empty path, ``.`` or ``..``, a pattern with two frame-number fields or a printf field other than
    ``%0Nd``, a field in a folder name, or a single image's name (``o.jpg``) for a sequence of frames."""
    text = os.fspath(output)
    if not text.strip():
        raise MediaError("-o: the output path is empty; give a video file, a folder or a pattern "
                         "(e.g. out.mp4, out/, out/shot.####.png)")
    p = Path(text)
    if p.name in ("", ".", ".."):
        raise MediaError(f"-o {text}: the output needs a name of its own (a video file such as out.mp4, a new "
                         "folder, or a pattern such as out/shot.####.png), not the current or parent folder")
    fields = _FRAME_FIELD.findall(p.name)
    if len(fields) > 1:
        raise MediaError(f"{text}: two frame-number fields ({fields[0]} and {fields[1]}); a pattern has one, "
                         f"e.g. {p.parent / 'shot.####.png'}")
    other = [m.group(0) for m in _OTHER_FIELD.finditer(p.name) if not _FRAME_FIELD.fullmatch(m.group(0))]
    if other and not is_video_path(p):  # a frame pattern meant, with a field that numbers nothing
        raise MediaError(f"{text}: {other[0]} is not a frame-number field; use %04d or #### "
                         f"(e.g. {p.parent / 'shot.%04d.png'})")
    if fields and _extension(p.name[p.name.index(fields[0]) + len(fields[0]):]).lower() not in IMAGE_EXTENSIONS:
        raise MediaError(f"{text}: the pattern must end in an image extension ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    if any(_FRAME_FIELD.search(part) or _OTHER_FIELD.search(part) for part in p.parent.parts):
        raise MediaError(f"{text}: a frame-number field belongs in the file name, not in a folder name")
    folder_meant = text.endswith((os.sep, "/")) or p.is_dir()
    if not fields and not is_video_path(p) and p.suffix.lower() in IMAGE_EXTENSIONS and not folder_meant:
        raise MediaError(f"{text}: names a single {p.suffix} image, but the job writes {frame_count} frame(s); "
                         f"give a folder (-o {p.with_suffix('')}/) or a pattern (-o {p.with_suffix('')}.####{p.suffix})")


def output_frame_paths(output: str | os.PathLike, indices: range, numbering: Numbering | None,
                       extension: str = ".png") -> dict[int, Path]:
    """Where each frame (by index) goes in a folder or pattern output.

    - a pattern (``out/shot.####.exr``): its name, padding and extension, numbered like the input
      sequence (or by index for a video);
    - a folder: a numbered sequence keeps its numbering and naming with ``_rerender`` added
      (``shot_v001.1001.exr`` -> ``OUT/shot_v001_rerender.1001.png``; bare numbers stay bare);
      otherwise ``OUT/NNNN.png`` by zero-based index.
    """
    number = (lambda i: numbering.numbers[i]) if numbering is not None else (lambda i: i)
    pattern = parse_output_pattern(output)
    if pattern is not None:
        folder, prefix, padding, suffix = pattern
        if _extension(suffix).lower() not in IMAGE_EXTENSIONS:
            raise MediaError(f"{output}: the pattern must end in an image extension ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        return {i: folder / f"{prefix}{number(i):0{padding}d}{suffix}" for i in indices}
    folder = Path(output)
    if numbering is None:
        return {i: folder / f"{frame_name(i)}{extension}" for i in indices}
    named = numbering.renamed()
    keep = named.suffix[:len(named.suffix) - len(_extension(named.suffix))]
    return {i: folder / named.name(number(i), keep + extension) for i in indices}


def _extension(name_tail: str) -> str:
    """The extension of the end of a file name (``".exr"`` of ``".exr"`` and of ``"_v2.exr"``)."""
    return Path("x" + name_tail).suffix
