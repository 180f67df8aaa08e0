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

Optical flows (``WORK/flow``) are computed when first needed, by whichever stage, process or
machine needs them (:class:`rerender.flow.FlowCache`); :meth:`Job.flow_fingerprint` names them.

The key-frame stage (:mod:`rerender.keyframes`) and the propagation stage (:mod:`rerender.propagation`)
run between decode and output (:mod:`rerender.output` writes ``WORK/out`` to the output video or
folder); :mod:`rerender.pipeline` composes them.
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
from .files import digest, entry_ok, file_digest, record_entry, report_damaged
from .matte import MatteSource
from .native import require_native
from .output import check_replaced, check_target
from .overwrite_guard import KEY_FILE, KEYS, Inputs, check_output, check_work_dir
from .memory import pass_memory, usable_memory
from .progress import Progress
from .workdir import WorkDir, default_work_dir

__all__ = ["JobConfig", "Job", "JobError", "JobCancelled", "parse_frame_range", "MIN_FRAME_SIDE", "StepHook"]

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
    overwrite: bool = False
    """Let the output replace files that rerender did not write for it (by default an existing file
    that no earlier run of this output, recorded in its work directory, wrote is refused)."""
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
        if self.work_dir is not None and not os.fspath(self.work_dir).strip():
            raise ValueError("--work-dir: the path is empty; name a folder (or leave --work-dir out to use OUT.work)")
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
             keys: str | os.PathLike | None = None, writes_output: bool = True) -> "Job":
        """Probe ``input``, select the frames and check the paths: raises :class:`JobError` /
        :class:`rerender.media.MediaError` before anything is written. ``writes_output``: False when
        ``output`` only names the default work directory (the key-frame stage alone): files there
        are then not checked for being replaced."""
        require_native()
        input_path = Path(input)
        keys_dir = None if keys is None else Path(keys)
        if keys_dir is not None and not keys_dir.exists():
            raise JobError(f"{keys_dir}: key-frame folder does not exist")
        info = media.probe(input_path)
        sel = media.resolve_frames(parse_frame_range(cfg.frames), info.frame_count, str(input_path))
        if output is not None:
            media.check_output_name(output, len(sel))
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
            check_target(output, depth, cfg.alpha)
            pattern = media.parse_output_pattern(output)
            check_output(pattern[0] if pattern else output, inputs, is_folder=not media.is_video_path(output))
        check_work_dir(wd.root, inputs, output)
        job = cls(input_path, info, sel, (h, w), wd, cfg, depth, colour, matte, plate_alpha)
        if output is not None and writes_output and not cfg.overwrite:
            check_replaced(job, output)
        return job

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
            self._redecode_damaged()
            self._decode_matte(progress)
            return
        wd.frames.mkdir(parents=True, exist_ok=True)
        # frames are written in order, so the first missing one is where a stopped decode resumes
        first = next((i for i in sel if not wd.frame_path(i).exists()), sel.stop)
        with progress.stage("decode", len(sel)) as bar:
            bar.skip(first - sel.start)
            for i, frame in zip(range(first, sel.stop), self._working_frames(first, sel.stop)):
                if not wd.frame_path(i).exists():
                    self._store_frame(i, frame)
                bar.update()
                if on_step:
                    on_step("decode", i)
        self._redecode_damaged(range(sel.start, first))
        m = wd.manifest()
        m["frames"]["complete"] = True
        wd.update_manifest(frames=m["frames"])
        self._decode_matte(progress)

    def _store_frame(self, i: int, frame: tuple[np.ndarray, bytes | None]) -> None:
        img, data = frame
        if data is None:
            self.wd.write_frame(i, img)
        else:
            self.wd.write_frame_bytes(i, img, data)

    def _redecode_damaged(self, frames: range | None = None) -> None:
        """Decode again the stored frames that are missing or not what was written (each checked
        against its recorded digest; a damaged one is reported)."""
        for i in self.frames if frames is None else frames:
            if not entry_ok(self.wd.frame_path(i)):
                report_damaged(self.wd.frame_path(i))
                self._store_frame(i, next(iter(self._working_frames(i, i + 1))))

    def _working_frames(self, first: int, stop: int):
        """The selected frames ``first`` to ``stop`` (exclusive) in the working format (uint8, or
        float32 0..255 for deep plates), each with the PNG bytes to store for it in ``WORK/frames``
        or None (then it is encoded): a PNG of the input at the working size is stored as it is
        (it decodes to the same frame), which saves encoding every frame again."""
        if first >= stop:
            return
        if self.depth == "uint8":
            if self.info.is_sequence and self.hw == (self.info.height, self.info.width):
                for i in range(first, stop):
                    path = self.info.files[i]
                    if path.suffix.lower() == ".png":
                        img, data = media.read_image_and_bytes(path)
                        # (a PNG stored nearly uncompressed is encoded: the work directory stays small)
                        stored = data if len(data) < 0.9 * img.nbytes else None
                        yield media.check_sequence_frame(self.info, i, img), stored
                    else:
                        yield media.check_sequence_frame(self.info, i, media.read_image(path)), None
                return
            for img in media.read_frames(self.input, frames=slice(first, stop), size=self.cfg.size, info=self.info):
                yield img, None
            return
        for i in range(first, stop):
            rgb, _ = self.plate_file(i)
            yield np.ascontiguousarray(media.resize_to(media.to_working(rgb, self.colour), self.hw),
                                       dtype=np.float32), None

    def _decode_matte(self, progress: Progress) -> None:
        """The matte at the working size into ``WORK/mattes`` (uint8, 255 = restyle)."""
        if self.matte is None:
            return
        wd, sel, src = self.wd, self.frames, self.matte
        files = list(src.info.files) if src.info.is_sequence else [src.path]
        fp = digest({"matte": file_digest(files), "start": sel.start, "stop": sel.stop, "size": list(self.hw)})
        m = wd.manifest().get("mattes", {})
        if m.get("fingerprint") == fp and m.get("complete") and all(entry_ok(wd.matte_path(i)) for i in sel):
            return  # (a damaged matte is written again, with the others left as they are)
        if m.get("fingerprint") != fp:
            wd.clear("mattes")
        wd.update_manifest(mattes={"fingerprint": fp, "complete": False})
        wd.mattes.mkdir(parents=True, exist_ok=True)
        with progress.stage("matte", len(sel)) as bar:
            for i, matte in src.frames(sel, self.hw):
                media.write_png_if_changed(wd.matte_path(i), matte)
                record_entry(wd.matte_path(i))
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

    def plate_file(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The plate's frame i as stored (RGB at its own depth, and its alpha or None)."""
        rgb, alpha = media.read_plate(self.info.files[i])
        return media.check_sequence_frame(self.info, i, rgb), alpha


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
