"""One rerender job on one strip: from the strip to a worker command, and from its output to a new strip.

Used by the operator both synchronously (``execute``) and from its modal timer; it holds names,
not RNA pointers, because strips can be reallocated (undo) while a job runs.
"""
from __future__ import annotations

import os
import re
import uuid
from typing import List, Optional, Tuple

import bpy

from . import compat, placement, preferences
from .settings import MODE_TO_REQUEST
from .worker import JobProgress, JobRequest, WorkerProcess, build_command, choose_worker

SUPPORTED_TYPES = {"MOVIE": "movie", "IMAGE": "image sequence"}
# The image types the worker reads as a sequence: the image rows of rerender.media.formats.FORMATS
# (a copy: the add-on runs without rerender; tests/test_addon_constants.py checks it).
_IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr", ".bmp", ".webp", ".hdr", ".ppm", ".pgm"}


def unavailable_reason(context) -> Optional[str]:
    """Why the operator cannot run in ``context`` (shown by poll and the panel), or None."""
    scene = getattr(context, "scene", None)
    if compat.editor(scene) is None:
        return "The scene has no sequencer strips"
    strip = compat.active_strip(context)
    if strip is None:
        return "No active strip: click a movie or image-sequence strip"
    if strip.type not in SUPPORTED_TYPES:
        return (f"Active strip '{strip.name}' is a {strip.type.lower()} strip; "
                f"rerender works on movie and image-sequence strips")
    return None


def source_frames(strip) -> Tuple[int, int]:
    """Zero-based media frames (A, B), B exclusive, that the strip's trim leaves visible."""
    return placement.source_frame_range(strip.frame_offset_start, strip.frame_final_duration,
                                        strip.frame_duration, compat.animation_offset_start(strip))


def check_one_to_one(strip, scene) -> None:
    """Refuse strips whose scene frames do not map one-to-one onto media frames (ValueError).

    The worker processes media frames; the result strip shows one output frame per scene frame.
    That only lines up when the strip plays its media at the scene's rate, forwards, unretimed.
    """
    fps = scene.render.fps / scene.render.fps_base
    media_fps = float(getattr(strip, "fps", 0.0) or 0.0) if strip.type == "MOVIE" else 0.0
    if media_fps and abs(media_fps - fps) > 1e-3:
        raise ValueError(f"movie strip '{strip.name}' is {media_fps:g} fps in a {fps:g} fps scene; "
                         f"set the scene frame rate to the movie's")
    if len(getattr(strip, "retiming_keys", ())) > 0:
        raise ValueError(f"strip '{strip.name}' is retimed (speed changes); remove its retiming first")
    if getattr(strip, "use_reverse_frames", False):
        raise ValueError(f"strip '{strip.name}' plays backwards; switch off Reverse Frames first")


def _natural_key(name: str) -> list:
    # The worker orders a folder naturally ("f2" before "f10"); so must the comparison below.
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _input_for_image_strip(strip, folder: str) -> str:
    """The folder of an image strip, if its elements are exactly the folder's images in order.

    The worker reads a folder as one sequence in natural name order, so its frame indices only
    agree with the strip's when the strip shows the whole folder.
    """
    if not os.path.isdir(folder):
        raise ValueError(f"image strip '{strip.name}': folder {folder!r} does not exist")
    names = compat.image_filenames(strip)
    in_folder = sorted((n for n in os.listdir(folder)
                        if not n.startswith(".") and os.path.splitext(n)[1].lower() in _IMAGE_EXTS
                        and os.path.isfile(os.path.join(folder, n))), key=_natural_key)
    if names != in_folder:
        raise ValueError(
            f"image strip '{strip.name}': its {len(names)} images are not all the images of "
            f"{folder!r} in name order ({len(in_folder)} there); put the sequence in a folder "
            f"of its own")
    return folder


def matte_input(scene, name: str) -> str:
    """The media of the matte strip ``name``: a movie file, an image sequence's folder, or the single
    image of a one-image strip (ValueError naming the strip when it cannot be one)."""
    strip = compat.find_strip(compat.editor(scene), name)
    if strip is None:
        raise ValueError(f"matte strip '{name}' is not in the sequencer")
    if strip.type not in SUPPORTED_TYPES:
        raise ValueError(f"matte strip '{name}' is a {strip.type.lower()} strip; use a movie or image strip "
                         "(render a mask strip to images first)")
    path = os.path.abspath(bpy.path.abspath(compat.media_path(strip), library=strip.id_data.library))
    if strip.type == "MOVIE":
        if not os.path.isfile(path):
            raise ValueError(f"matte strip '{name}': file {path!r} does not exist")
        return path
    names = compat.image_filenames(strip)
    if len(names) == 1:
        single = os.path.join(path, names[0])
        if not os.path.isfile(single):
            raise ValueError(f"matte strip '{name}': image {single!r} does not exist")
        return single
    return _input_for_image_strip(strip, path)


class StripJob:
    """A job for the active strip of ``context``; raises ValueError with the reason it cannot run."""

    def __init__(self, context):
        reason = unavailable_reason(context)
        if reason:
            raise ValueError(reason)
        scene = context.scene
        strip = compat.active_strip(context)
        settings = scene.rerender
        self.mode = MODE_TO_REQUEST[settings.mode]
        python, env = choose_worker(self.mode, preferences.worker_python(context))

        check_one_to_one(strip, scene)
        self.scene_name = scene.name
        self.strip_name = strip.name
        self.channel = int(strip.channel)
        self.left = compat.left_handle(strip)
        self.length = compat.visible_length(strip)
        self.frames = source_frames(strip)

        raw = compat.media_path(strip)
        path = os.path.abspath(bpy.path.abspath(raw, library=strip.id_data.library))
        if strip.type == "MOVIE":
            if not os.path.isfile(path):
                raise ValueError(f"movie strip '{strip.name}': file {path!r} does not exist")
            input_path = path
        else:
            input_path = _input_for_image_strip(strip, path)

        if not bpy.data.filepath and not settings.project_id:
            settings.project_id = uuid.uuid4().hex
        job_root = placement.job_folder(preferences.work_root(context), bpy.data.filepath, settings.project_id,
                                        scene.name, strip.name)
        output_dir = (os.path.abspath(bpy.path.abspath(settings.output_dir)) if settings.output_dir
                      else os.path.join(job_root, "render"))
        keys_dir = os.path.abspath(bpy.path.abspath(settings.keys_dir)) if settings.keys_dir else ""
        matte = matte_input(scene, settings.matte_strip) if settings.matte_strip else ""
        self.request = JobRequest(
            mode=self.mode, input_path=input_path, output_dir=output_dir, frames=self.frames,
            work_dir=os.path.join(job_root, "work"), size=int(settings.size), keys_dir=keys_dir,
            prompt=settings.prompt, negative_prompt=settings.negative_prompt, model=settings.model,
            lora=bpy.path.abspath(settings.lora) if settings.lora else "",
            lora_scale=round(settings.lora_scale, 4), control=settings.control,
            controlnet=settings.controlnet, control_strength=round(settings.control_strength, 4),
            key_interval=int(settings.key_interval), strength=round(settings.strength, 4),
            seed=int(settings.seed), matte=matte, matte_feather=round(settings.matte_feather, 4))
        self.command: List[str] = build_command(python, self.request)
        self.progress = JobProgress()
        self.worker = WorkerProcess(self.command, env=env)

    def start(self) -> None:
        os.makedirs(self.request.output_dir, exist_ok=True)
        self.worker.start()

    def poll(self) -> bool:
        """Fold in new events; True once the worker has finished (either way)."""
        for event in self.worker.events():
            self.progress.feed(event)
        if not self.worker.finished():
            return False
        for event in self.worker.events():
            self.progress.feed(event)
        return True

    def cancel(self) -> None:
        self.worker.cancel()

    def output_files(self) -> List[str]:
        """The result frames, in strip order; ValueError naming the first one missing."""
        a, b = self.frames
        if self.mode == "preview":
            # The preview is the first key frame, in the key folder the worker reports as its output.
            folder = self.progress.output or os.path.join(self.request.work_dir, "keys")
            files = [os.path.join(folder, placement.output_frame_name(a))]
        elif self.progress.files:  # named as the worker chose (a numbered sequence keeps its numbering)
            files = list(self.progress.files)
            if len(files) != b - a:
                raise ValueError(f"the worker wrote {len(files)} frames, expected {b - a}")
        else:
            files = [os.path.join(self.request.output_dir, placement.output_frame_name(i))
                     for i in range(a, b)]
        for f in files:
            if not os.path.isfile(f):
                raise ValueError(f"the worker finished but frame {f!r} is missing")
        return files

    def add_result_strip(self, scene=None):
        """Add the output as an image strip above the source, aligned to its handles."""
        scene = scene or bpy.data.scenes[self.scene_name]
        ed = compat.editor(scene, create=True)
        files = self.output_files()  # before touching the scene: never a half strip
        source = compat.find_strip(ed, self.strip_name)
        above = int(source.channel) if source is not None else self.channel
        end = self.left + self.length
        channel = placement.first_free_channel(compat.strip_spans(ed), above, self.left, end)
        strip = compat.new_image_strip(ed, f"{self.strip_name} rerender", files[0], channel, self.left)
        try:
            for f in files[1:]:
                strip.elements.append(os.path.basename(f))
            if len(files) == 1:  # a preview still spans the source
                strip.frame_final_duration = self.length
            if (compat.left_handle(strip), compat.visible_length(strip)) != (self.left, self.length):
                raise RuntimeError(
                    f"result strip landed at {compat.left_handle(strip)}+{compat.visible_length(strip)}"
                    f" instead of {self.left}+{self.length}")
        except Exception:
            compat.remove_strip(ed, strip)
            raise
        compat.set_active_strip(ed, strip)
        return strip
