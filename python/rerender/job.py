"""What both stages of a job share: the job's options, its input, its work directory, and the stages
that prepare and finish it.

:class:`JobConfig` holds the options that belong to the job rather than to a stage (frame range,
working size, optical flow, work directory, sound). :meth:`Job.open` probes the input, resolves the
frame range, and proves that the job cannot overwrite its inputs (:mod:`rerender.overwrite_guard`),
before anything is written. The stages it runs, each stamped in ``WORK/manifest.json`` (layout:
:mod:`rerender.workdir`) and reused when its fingerprint matches:

- :meth:`Job.decode`: the selected frames at the working size into ``WORK/frames`` (8-bit PNG, or the
  float32 working format of a 16-bit/float plate; streamed, one frame in memory at a time; a late
  range or a resumed decode seeks instead of decoding from the start) and the matte, if any, into
  ``WORK/mattes``;
- :meth:`Job.write_output`: ``WORK/out`` to the output video or folder, at the plate's depth and in
  its colour space, composited over the plate through the matte (or with the matte as alpha).

Optical flows (``WORK/flow``) are computed when first needed, by whichever stage, process or
machine needs them (:class:`rerender.flow.FlowCache`); :meth:`Job.flow_fingerprint` names them.

The key-frame stage (:mod:`rerender.keyframes`) and the propagation stage (:mod:`rerender.propagation`)
run between decode and output; :mod:`rerender.pipeline` composes them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import numpy as np

from . import media
from .colour import ColourSpace, colour_space_for
from .errors import JobCancelled, JobError
from .files import digest, file_digest, remove_stale_temporaries
from .matte import MatteSource, composite, feather
from .overwrite_guard import KEY_FILE, KEYS, Inputs, check_output, check_work_dir
from .memory import pass_memory, usable_memory
from .progress import Progress
from .workdir import WorkDir, default_work_dir

__all__ = ["JobConfig", "Job", "JobError", "JobCancelled", "parse_frame_range", "MIN_FRAME_SIDE", "StepHook"]

# image formats whose files carry an alpha channel
ALPHA_EXTENSIONS = (".png", ".tif", ".tiff", ".exr")

# The optical flow (OpenCV DIS) needs frames of at least 12 px on each side.
MIN_FRAME_SIDE = 12

StepHook = Callable[[str, int], None]  # on_step(stage, frame index) after every stored frame


@dataclass
class JobConfig:
    """The options of a job that every stage reads."""

    frames: str | None = None
    """Frame range "A:B" (zero-based, B exclusive, either side optional); None = every frame."""
    size: int | None = None
    """Working resolution: the short side in pixels, rounded to a multiple of 8; None = the input's size."""
    flow: str = "dis"
    """Optical flow backend (rerender.flow): dis, deepflow, or a registered one."""
    work_dir: str | None = None
    """Intermediate files; None = OUT.work beside the output."""
    audio: bool = True
    """Carry the input's sound into a video output."""
    keep_intermediates: bool = False
    """Keep finished segments' candidates, masks and flows (the work directory then grows by about
    10x the output per frame at 1080p). Off: a finished segment keeps only its output frames and
    stamp; a killed job still resumes to identical bytes, but changing a blending option later
    re-synthesises instead of only re-blending."""
    key_numbering: Literal["auto", "index", "frame"] = "auto"
    """How key-frame file names count: zero-based indices, the sequence's own frame numbers
    (shot.1001.exr -> 1001), or auto (whichever fits; refused when both fit differently)."""
    matte: str | None = None
    """Matte (video, image sequence or single image; white = restyle, alpha if it has one, else
    luminance): only the matted region is restyled (rerender.matte)."""
    matte_feather: float = 0.0
    """Soft edge of the matte when compositing over the plate: Gaussian of this many pixels."""
    alpha: bool = False
    """Write RGBA with the (feathered) matte as alpha instead of compositing over the plate
    (straight alpha in PNG/TIFF, premultiplied in EXR)."""
    ocio: str | None = None
    """OpenColorIO config (file or ocio:// URI) for the plate's colour space; None = $OCIO or the
    built-in sRGB curve for float plates (rerender.colour)."""
    colorspace: str | None = None
    """The plate's colour space in the OCIO config (default: its scene_linear role for float plates)."""

    def __post_init__(self) -> None:
        if self.size is not None and not 16 <= self.size <= media.MAX_WORKING_SIDE:
            raise ValueError(f"size: the working short side must be 16 to {media.MAX_WORKING_SIDE} pixels, "
                             f"got {self.size}")
        parse_frame_range(self.frames)
        if not (isinstance(self.matte_feather, (int, float)) and 0 <= self.matte_feather <= 256):
            raise ValueError(f"matte_feather: expected 0 to 256 pixels, got {self.matte_feather!r}")
        if self.alpha and self.matte is None:
            raise ValueError("alpha: writing the matte as alpha needs a matte (--matte PATH)")

    def work_dir_for(self, output: str | os.PathLike | None) -> Path:
        if self.work_dir is not None:
            return Path(self.work_dir)
        if output is None:
            raise JobError("--work-dir: give a work directory (or -o OUT to use OUT.work)")
        return default_work_dir(output)


def parse_frame_range(text: str | None) -> slice:
    """``"A:B"`` (zero-based, B exclusive, either side optional) -> slice; None/"" -> everything."""
    if text is None or text.strip() in ("", ":"):
        return slice(None, None)
    parts = text.split(":")
    if len(parts) != 2:
        raise JobError(f"--frames: expected A:B (zero-based, B exclusive, either side optional), got {text!r}")
    try:
        start = int(parts[0]) if parts[0].strip() else None
        stop = int(parts[1]) if parts[1].strip() else None
    except ValueError:
        raise JobError(f"--frames: expected integers in A:B, got {text!r}") from None
    if (start is not None and start < 0) or (stop is not None and stop < 0):
        raise JobError(f"--frames: frame indices are zero-based and >= 0, got {text!r}")
    if start is not None and stop is not None and stop <= start:
        raise JobError(f"--frames: the range {text!r} is empty (B is exclusive and must be > A)")
    return slice(start, stop)


@dataclass
class Job:
    """An opened job: its probed input, selected frames, working size and work directory."""

    input: Path
    info: media.MediaInfo
    frames: range
    hw: tuple[int, int]
    wd: WorkDir
    cfg: JobConfig
    depth: str = "uint8"
    """The plate's pixel type (uint8 for video; uint16, float16 or float32 for deep sequences)."""
    colour: ColourSpace = field(default_factory=ColourSpace)
    matte: MatteSource | None = None
    plate_alpha: bool = False
    """The plate has an alpha channel (kept in image outputs)."""

    @classmethod
    def open(cls, input: str | os.PathLike, cfg: JobConfig, *, output: str | os.PathLike | None = None,
             keys: str | os.PathLike | None = None) -> "Job":
        """Probe ``input``, select the frames and check the paths: raises :class:`JobError` /
        :class:`rerender.media.MediaError` before anything is written."""
        input_path = Path(input)
        keys_dir = None if keys is None else Path(keys)
        if keys_dir is not None and not keys_dir.exists():
            raise JobError(f"{keys_dir}: key-frame folder does not exist")
        info = media.probe(input_path)
        sel = media.resolve_frames(parse_frame_range(cfg.frames), info.frame_count, str(input_path))
        h, w = media.working_size(info.width, info.height, cfg.size)
        if len(sel) > 1 and min(h, w) < MIN_FRAME_SIDE:
            raise JobError(f"{input_path}: frames of {w}x{h} (working size) are too small for optical flow; "
                           f"each side needs at least {MIN_FRAME_SIDE} px")
        need, have = pass_memory(h * w), usable_memory()
        if need > have:
            raise JobError(f"{input_path}: propagating frames of {w}x{h} needs about {need / 2**30:.1f} GiB, more "
                           f"than this machine's {have / 2**30:.1f} GiB; choose a smaller --size")
        depth, plate_alpha = _plate_format(info)
        colour = colour_space_for(depth.startswith("float"), cfg.ocio, cfg.colorspace)
        matte = MatteSource.open(cfg.matte, info) if cfg.matte is not None else None
        wd = WorkDir(cfg.work_dir_for(output), cfg.flow, deep=depth != "uint8", matted=matte is not None)
        inputs = _inputs(input_path, info, keys_dir)
        if matte is not None:
            inputs.add_files("the matte", matte.info.files or [matte.path])
        if output is not None:
            pattern = media.parse_output_pattern(output)
            if media.is_video_path(output) and cfg.alpha:
                raise JobError(f"{output}: --alpha writes RGBA frames; give an image output (a folder, or a "
                               "pattern such as out/shot.####.png or .exr)")
            if pattern:
                target = Path(pattern[1] + "0" + pattern[3])
                media.check_writable(target, output_depth(target.suffix, depth))
                if cfg.alpha and target.suffix.lower() not in ALPHA_EXTENSIONS:
                    raise JobError(f"{output}: {target.suffix} cannot hold the alpha channel --alpha writes; "
                                   "use .png, .tif or .exr")
            check_output(pattern[0] if pattern else output, inputs, is_folder=not media.is_video_path(output))
        check_work_dir(wd.root, inputs, output)
        return cls(input_path, info, sel, (h, w), wd, cfg, depth, colour, matte, plate_alpha)

    # -------------------------------------------------------------------------------- stages

    def decode(self, progress: Progress, on_step: StepHook | None = None) -> None:
        """The selected frames at the working size into ``WORK/frames``, and the matte into
        ``WORK/mattes`` (resumable)."""
        wd, sel = self.wd, self.frames
        stamp = {"input": file_digest(list(self.info.files) if self.info.is_sequence else [self.input]),
                 "start": sel.start, "stop": sel.stop, "size": list(self.hw), "depth": self.depth,
                 "colour": self.colour.name}
        fp = digest(stamp)
        m = wd.manifest()
        if m.get("frames", {}).get("fingerprint") != fp:
            # a different input, range or size: nothing downstream is valid any more
            wd.clear("frames", "flow", "segments", "out")
            wd.update_manifest(frames={"fingerprint": fp, "complete": False, **stamp}, flow={})
        elif m["frames"].get("complete"):
            self._decode_matte(progress)
            return
        wd.frames.mkdir(parents=True, exist_ok=True)
        # frames are written in order, so the first missing one is where a stopped decode resumes
        first = next((i for i in sel if not wd.frame_path(i).exists()), sel.stop)
        with progress.stage("decode", len(sel)) as bar:
            bar.skip(first - sel.start)
            for i, img in zip(range(first, sel.stop), self._working_frames(first)):
                if not wd.frame_path(i).exists():
                    media.write_image(wd.frame_path(i), img)
                bar.update()
                if on_step:
                    on_step("decode", i)
        m = wd.manifest()
        m["frames"]["complete"] = True
        wd.update_manifest(frames=m["frames"])
        self._decode_matte(progress)

    def _working_frames(self, first: int):
        """The selected frames from ``first`` on, in the working format (uint8, or float32 0..255 for
        deep plates)."""
        sel = self.frames
        if first >= sel.stop:
            return
        if self.depth == "uint8":
            yield from media.read_frames(self.input, frames=slice(first, sel.stop), size=self.cfg.size, info=self.info)
            return
        for i in range(first, sel.stop):
            rgb, _ = self._plate_file(i)
            yield np.ascontiguousarray(media.resize_to(media.to_working(rgb, self.colour), self.hw), dtype=np.float32)

    def _plate_file(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        rgb, alpha = media.read_plate(self.info.files[i])
        return media.check_sequence_frame(self.info, i, rgb), alpha

    def _decode_matte(self, progress: Progress) -> None:
        """The matte at the working size into ``WORK/mattes`` (uint8, 255 = restyle)."""
        if self.matte is None:
            return
        wd, sel, src = self.wd, self.frames, self.matte
        files = list(src.info.files) if src.info.is_sequence else [src.path]
        fp = digest({"matte": file_digest(files), "start": sel.start, "stop": sel.stop, "size": list(self.hw)})
        m = wd.manifest().get("mattes", {})
        if m.get("fingerprint") == fp and m.get("complete"):
            return
        if m.get("fingerprint") != fp:
            wd.clear("mattes")
        wd.update_manifest(mattes={"fingerprint": fp, "complete": False})
        wd.mattes.mkdir(parents=True, exist_ok=True)
        with progress.stage("matte", len(sel)) as bar:
            for i, matte in src.frames(sel, self.hw):
                media.write_png_if_changed(wd.matte_path(i), matte)
                bar.update()
        wd.update_manifest(mattes={"fingerprint": fp, "complete": True})

    def matte_fingerprint(self) -> str | None:
        """What the decoded matte was made from (None without a matte): part of every fingerprint
        of work that depends on it."""
        return self.wd.manifest().get("mattes", {}).get("fingerprint") if self.matte is not None else None

    def flow_fingerprint(self) -> str:
        """What the job's flows are computed from (the decoded frames and the flow method); recorded
        in the manifest. The flows themselves are computed on demand."""
        wd = self.wd
        fp = digest({"frames": wd.manifest()["frames"]["fingerprint"], "method": wd.flow_method})
        if wd.manifest().get("flow", {}).get("fingerprint") != fp:
            wd.update_manifest(flow={"fingerprint": fp, "method": wd.flow_method})
        return fp

    def write_output(self, output: Path, progress: Progress) -> list[Path]:
        """``WORK/out`` to a video (the input's fps and timecode; its sound unless the job says no), a
        folder, or a pattern such as ``out/shot.####.png`` (named and numbered like the input
        sequence: :func:`rerender.media.output_frame_paths`); final files are flushed to disk before
        they take their names. Frames are written at the plate's depth where the format allows
        (:func:`output_depth`), composited over the plate through the matte (or with it as alpha).
        Returns the files written."""
        sel, info = self.frames, self.info
        if not media.is_video_path(output):
            ext = _default_extension(info, self.depth, alpha=self.cfg.alpha)
            targets = media.output_frame_paths(output, sel, info.numbering, extension=ext)
            folder = next(iter(targets.values())).parent
            folder.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(folder, targets=[t.name for t in targets.values()])
            with progress.stage("write", len(sel)) as bar:
                for i, target in targets.items():
                    rgb, alpha = self.final_frame(i, output_depth(target.suffix, self.depth))
                    keep_alpha = alpha is not None and target.suffix.lower() in ALPHA_EXTENSIONS
                    media.write_image(target, rgb, alpha=alpha if keep_alpha else None, fsync=True, if_changed=True)
                    bar.update()
            return list(targets.values())
        remove_stale_temporaries(output.parent, targets=[output.name])
        source = info.path if self.cfg.audio and info.has_audio else None
        if source is not None and (problem := media.audio_problem(source)):
            progress.log(f"warning: {problem}; writing the video without sound")
            source = None
        whole = sel.start == 0 and sel.stop == info.frame_count

        def encode(audio_from) -> None:
            def frames():
                with progress.stage("write", len(sel)) as bar:
                    for i in sel:
                        yield self.final_frame(i, "uint8")[0]
                        bar.update()

            media.write_video(frames(), output, info.fps, audio_from=audio_from,
                              audio_start=float(sel.start / info.fps),
                              audio_duration=None if whole else float(len(sel) / info.fps), fsync=True,
                              timecode=info.timecode and media.timecode_offset(info.timecode, sel.start, info.fps))

        try:
            encode(source)
        except media.AudioError as e:
            if source is None:
                raise
            progress.log(f"warning: {e}; writing the video without sound")
            encode(None)
        return [output]

    def final_frame(self, i: int, dtype: str) -> tuple[np.ndarray, np.ndarray | None]:
        """Output frame i as (RGB, alpha or None) of ``dtype``: the restyled frame back in the plate's
        colour space; with a matte, composited over the plate (its pixels exact where the matte is
        0) or, with ``alpha``, carrying the feathered matte as alpha (premultiplied for EXR). A
        plate's own alpha is kept otherwise."""
        restyled = media.from_working(self.wd.out_frame(i), dtype, self.colour)
        if self.matte is None and not self.plate_alpha:
            return restyled, None
        plate, plate_alpha = self._plate_at(i, dtype)
        if self.matte is None:
            return restyled, plate_alpha
        weight = feather(self.wd.matte(i), self.cfg.matte_feather)
        if not self.cfg.alpha:
            return composite(restyled, plate, weight), plate_alpha
        alpha = _convert_alpha(weight, dtype)
        if dtype.startswith("float"):  # EXR stores colour premultiplied by alpha
            return (restyled.astype(np.float32) * weight[:, :, None]).astype(dtype), alpha
        return restyled, alpha

    def _plate_at(self, i: int, dtype: str) -> tuple[np.ndarray, np.ndarray | None]:
        """The plate's frame i at the working size as ``dtype`` (its own pixels when the depth and
        size match, so that they come back exactly), and its alpha (converted likewise) or None."""
        if not self.info.is_sequence:
            return media.from_working(self.wd.frame(i), dtype, self.colour), None
        rgb, alpha = self._plate_file(i)
        rgb = media.resize_to(rgb, self.hw)
        if str(rgb.dtype) != dtype:
            rgb = media.from_working(media.to_working(rgb, self.colour), dtype, self.colour)
        if alpha is not None:
            alpha = _convert_alpha(media.resize_to(alpha, self.hw), dtype)
        return rgb, alpha


def output_depth(extension: str, plate: str) -> str:
    """The pixel type written to a file of ``extension`` for a plate of type ``plate``: the plate's
    own when the format holds it, else the closest it does (float -> float32/float16/uint16/uint8).
    Integer plates written as EXR keep their display-referred values (their colour space, identity
    unless ``--colorspace`` names one)."""
    order = {"uint8": ("uint8", "float16", "float32"), "uint16": ("uint16", "float32", "uint8"),
             "float16": ("float16", "float32", "uint16", "uint8"),
             "float32": ("float32", "float16", "uint16", "uint8")}[plate]
    for dtype in order:
        try:
            media.check_writable("x" + extension, dtype)
            return dtype
        except media.MediaError:
            continue
    media.check_writable("x" + extension, plate)  # raises, naming the extension
    return plate


def _default_extension(info: media.MediaInfo, depth: str, alpha: bool = False) -> str:
    """Frames of a folder output take the input sequence's extension when it holds the plate's depth
    (EXR in, EXR out) and, with ``alpha``, an alpha channel; else PNG (float plates: EXR)."""
    if info.is_sequence:
        ext = info.files[0].suffix.lower()
        if output_depth(ext, depth) == depth and (ext in ALPHA_EXTENSIONS or not alpha):
            return ext
    return ".exr" if depth.startswith("float") else ".png"


def _convert_alpha(alpha: np.ndarray, dtype: str) -> np.ndarray:
    """An alpha channel of any stored type as ``dtype`` (integer alphas scaled to the full range)."""
    scale = {"uint8": 255.0, "uint16": 65535.0}.get(str(alpha.dtype), 1.0)
    a = alpha.astype(np.float32) / np.float32(scale)
    if dtype in ("uint8", "uint16"):
        top = 255.0 if dtype == "uint8" else 65535.0
        return np.clip(np.rint(a * top), 0, top).astype(dtype)
    return a.astype(dtype)


def _plate_format(info: media.MediaInfo) -> tuple[str, bool]:
    """(pixel type, has alpha) of the plate: uint8 without alpha for video (decoded as 8-bit RGB);
    a sequence's own (EXR half stays half)."""
    if not info.is_sequence:
        return "uint8", False
    if info.dtype not in ("uint8", "uint16", "float16", "float32"):
        raise media.MediaError(f"{info.files[0]}: unsupported pixel type {info.dtype}")
    return info.dtype, info.has_alpha


def _inputs(input_path: Path, info: media.MediaInfo, keys_dir: Path | None = None) -> Inputs:
    """Everything the job reads, for the overwrite guard."""
    inputs = Inputs()
    if info.is_sequence:
        inputs.add_files("an input frame", info.files)
        if input_path.is_dir():
            inputs.add_folder("the input folder", input_path)
    else:
        inputs.add_files("the input", [input_path])
    if keys_dir is not None:
        inputs.add_folder(KEYS, keys_dir)
        inputs.add_files(KEY_FILE, media.list_indexed_images(keys_dir).values())
    return inputs
