"""Every difference of the sequencer (strips) API between Blender versions, in one place.

4.2 -> 4.4: ``SequenceEditor.sequences`` / ``sequences_all`` became ``strips`` / ``strips_all``
            (``bpy.types.Sequence`` -> ``Strip``); the old names were removed in 5.0.
5.0:        ``Context.active_sequence_strip`` removed (``SequenceEditor.active_strip`` works in all).
5.1:        ``frame_final_start`` / ``frame_final_end`` -> ``left_handle`` / ``right_handle``.
The rest of the add-on calls these helpers and never touches the differing names itself.
"""
from __future__ import annotations

from typing import Iterable, List, Optional, Tuple


def _has_rna_prop(obj, name: str) -> bool:
    rna = getattr(obj, "bl_rna", None)
    return rna is not None and name in rna.properties


def editor(scene, create: bool = False):
    """The scene's sequence editor (created on demand when ``create``), or None."""
    if scene is None:
        return None
    if scene.sequence_editor is None and create:
        scene.sequence_editor_create()
    return scene.sequence_editor


def top_level_strips(ed):
    """The editor's top-level strip collection (the one with ``new_image`` / ``new_movie``)."""
    return ed.strips if hasattr(ed, "strips") else ed.sequences


def all_strips(ed) -> Iterable:
    """Every strip, including those inside meta strips."""
    return ed.strips_all if hasattr(ed, "strips_all") else ed.sequences_all


def active_strip(context):
    """The active strip of the context's scene, or None."""
    ed = editor(getattr(context, "scene", None))
    if ed is None:
        return None
    strip = getattr(ed, "active_strip", None)
    if strip is None and hasattr(context, "active_sequence_strip"):  # < 5.0 fallback
        strip = context.active_sequence_strip
    return strip


def set_active_strip(ed, strip) -> None:
    ed.active_strip = strip


def left_handle(strip) -> int:
    """First visible scene frame of a strip (its left handle)."""
    if _has_rna_prop(strip, "left_handle"):
        return int(strip.left_handle)
    return int(strip.frame_final_start)


def right_handle(strip) -> int:
    """Scene frame just after the last visible frame (right handle, exclusive)."""
    if _has_rna_prop(strip, "right_handle"):
        return int(strip.right_handle)
    return int(strip.frame_final_end)


def visible_length(strip) -> int:
    return int(strip.frame_final_duration)


def animation_offset_start(strip) -> int:
    """Frames skipped at the start of the media (the "hold offset"; 0 where absent)."""
    return int(getattr(strip, "animation_offset_start", 0) or 0)


def strip_spans(ed, exclude=None) -> List[Tuple[int, int, int]]:
    """(channel, left handle, right handle) of every top-level strip except ``exclude``."""
    return [(int(s.channel), left_handle(s), right_handle(s))
            for s in top_level_strips(ed) if exclude is None or s != exclude]


def new_image_strip(ed, name: str, filepath: str, channel: int, frame_start: int,
                    fit_method: str = "FIT"):
    """Add an image strip whose first element is ``filepath``."""
    return top_level_strips(ed).new_image(name=name, filepath=filepath, channel=channel,
                                          frame_start=frame_start, fit_method=fit_method)


def remove_strip(ed, strip) -> None:
    top_level_strips(ed).remove(strip)


def find_strip(ed, name: str):
    """Strip called ``name`` anywhere in the editor, or None."""
    if ed is None:
        return None
    for s in all_strips(ed):
        if s.name == name:
            return s
    return None


def media_path(strip) -> Optional[str]:
    """Raw (possibly //-relative) media path: the movie file, or the image strip's folder."""
    if strip.type == "MOVIE":
        return strip.filepath
    if strip.type == "IMAGE":
        return strip.directory
    return None


def image_filenames(strip) -> List[str]:
    """File names of an image strip's elements, in strip order."""
    return [e.filename for e in strip.elements]


def draw_progress(layout, factor: float, text: str) -> None:
    """A progress bar (``UILayout.progress`` exists from 4.0); a label where it does not."""
    if hasattr(layout, "progress"):
        layout.progress(factor=factor, type="BAR", text=text)
    else:
        layout.label(text=f"{text} ({factor * 100:.0f}%)")
