"""Frame and channel arithmetic for strips, and where a strip's job keeps its files (pure Python,
testable without bpy)."""
from __future__ import annotations

import hashlib
import os
import re
from typing import Iterable, Tuple

MAX_CHANNEL = 128  # the sequencer's channel count


def source_frame_range(frame_offset_start: int, frame_final_duration: int, frame_duration: int,
                       animation_offset_start: int = 0) -> Tuple[int, int]:
    """Zero-based source frames (A, B), B exclusive, that a trimmed strip shows.

    A strip's content starts at its ``frame_start``; the left handle sits ``frame_offset_start``
    frames into the content, and ``frame_final_duration`` frames are visible. The content itself
    begins ``animation_offset_start`` frames into the media file. ``frame_duration`` is the content
    length; a handle dragged beyond the content (held frames) has no source frame to process.
    """
    a = int(frame_offset_start)
    n = int(frame_final_duration)
    if n <= 0:
        raise ValueError(f"strip: visible length {n} is not positive")
    if a < 0 or a + n > int(frame_duration):
        raise ValueError(
            f"strip: the handles reach beyond the media (visible content frames {a}..{a + n - 1}, "
            f"media has 0..{int(frame_duration) - 1}); move the handles inside the media")
    base = int(animation_offset_start)
    return base + a, base + a + n


def first_free_channel(occupied: Iterable[Tuple[int, int, int]], above: int, start: int, end: int,
                       max_channel: int = MAX_CHANNEL) -> int:
    """Lowest channel above ``above`` with no strip overlapping scene frames [start, end).

    ``occupied`` holds (channel, left handle, right handle exclusive) of the existing strips.
    """
    busy = {ch for ch, s, e in occupied if s < end and start < e}
    for channel in range(int(above) + 1, max_channel + 1):
        if channel not in busy:
            return channel
    raise ValueError(f"channel: no free channel above {above} for frames {start}..{end - 1}")


def output_frame_name(index: int) -> str:
    """File name of output frame ``index`` (absolute source index, 4+ digits zero-padded)."""
    return f"{int(index):04d}.png"


def _clean(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "untitled"


def _tag(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:10]


def job_folder(root: str, blend_path: str, blend_id: str, scene: str, strip: str) -> str:
    """The folder (under ``root``) of the job on ``strip`` of ``scene`` in one .blend project.

    Keyed on the saved .blend's absolute path (``blend_path``), or, for an unsaved file (empty
    path), on ``blend_id``, an id stored in the file: two projects, or two scenes, with a strip of
    the same name never share a work or output folder. The readable parts are cleaned names; the
    hashes keep apart names that clean to the same text (``a b`` and ``a_b``).
    """
    if blend_path:
        path = os.path.abspath(blend_path)
        project = f"{_clean(os.path.splitext(os.path.basename(path))[0])}-{_tag('file', path)}"
    else:
        if not blend_id:
            raise ValueError("job folder: an unsaved .blend file needs its project id")
        project = f"unsaved-{_tag('id', blend_id)}"
    return os.path.join(root, project, f"{_clean(scene)}-{_clean(strip)}-{_tag(scene, strip)}")
