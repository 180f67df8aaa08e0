"""What both stages of a job share: the job's options, its input, its work directory, and the stages
that prepare and finish it.

:class:`JobConfig` holds the options that belong to the job rather than to a stage (frame range,
working size, optical flow, work directory, sound). :meth:`Job.open` probes the input, resolves the
frame range, and proves that the job cannot overwrite its inputs (:mod:`rerender.overwrite_guard`),
before anything is written. The stages it runs, each stamped in ``WORK/manifest.json`` (layout:
:mod:`rerender.workdir`) and reused when its fingerprint matches:

- :meth:`Job.decode`: the selected frames at the working size into ``WORK/frames`` (streamed, one
  frame in memory at a time; a late range or a resumed decode seeks instead of decoding from
  the start);
- :meth:`Job.write_output`: ``WORK/out`` to the output video or folder.

Optical flows (``WORK/flow``) are computed when first needed, by whichever stage, process or
machine needs them (:class:`rerender.flow.FlowCache`); :meth:`Job.flow_fingerprint` names them.

The key-frame stage (:mod:`rerender.keyframes`) and the propagation stage (:mod:`rerender.propagation`)
run between decode and output; :mod:`rerender.pipeline` composes them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

from . import media
from .errors import JobCancelled, JobError
from .files import copy_if_changed, digest, file_digest, remove_stale_temporaries
from .overwrite_guard import KEY_FILE, KEYS, Inputs, check_output, check_work_dir
from .passes import pass_memory, usable_memory
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

    def __post_init__(self) -> None:
        if self.size is not None and not 16 <= self.size <= media.MAX_WORKING_SIDE:
            raise ValueError(f"size: the working short side must be 16 to {media.MAX_WORKING_SIDE} pixels, "
                             f"got {self.size}")
        parse_frame_range(self.frames)

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
        wd = WorkDir(cfg.work_dir_for(output), cfg.flow)
        inputs = _inputs(input_path, info, keys_dir)
        if output is not None:
            pattern = media.parse_output_pattern(output)
            if pattern:
                media.check_writable(pattern[1] + "0" + pattern[3])
            check_output(pattern[0] if pattern else output, inputs, is_folder=not media.is_video_path(output))
        check_work_dir(wd.root, inputs, output)
        return cls(input_path, info, sel, (h, w), wd, cfg)

    # -------------------------------------------------------------------------------- stages

    def decode(self, progress: Progress, on_step: StepHook | None = None) -> None:
        """The selected frames at the working size into ``WORK/frames`` (resumable)."""
        wd, sel = self.wd, self.frames
        stamp = {"input": file_digest(list(self.info.files) if self.info.is_sequence else [self.input]),
                 "start": sel.start, "stop": sel.stop, "size": list(self.hw)}
        fp = digest(stamp)
        m = wd.manifest()
        if m.get("frames", {}).get("fingerprint") != fp:
            # a different input, range or size: nothing downstream is valid any more
            wd.clear("frames", "flow", "segments", "out")
            wd.update_manifest(frames={"fingerprint": fp, "complete": False, **stamp}, flow={})
        elif m["frames"].get("complete"):
            return
        wd.frames.mkdir(parents=True, exist_ok=True)
        # frames are written in order, so the first missing one is where a stopped decode resumes
        first = next((i for i in sel if not wd.frame_path(i).exists()), sel.stop)
        with progress.stage("decode", len(sel)) as bar:
            bar.skip(first - sel.start)
            if first < sel.stop:
                rest = media.read_frames(self.input, frames=slice(first, sel.stop), size=self.cfg.size,
                                         info=self.info)
                for i, rgb in zip(range(first, sel.stop), rest):
                    if not wd.frame_path(i).exists():
                        media.write_image(wd.frame_path(i), rgb)
                    bar.update()
                    if on_step:
                        on_step("decode", i)
        m = wd.manifest()
        m["frames"]["complete"] = True
        wd.update_manifest(frames=m["frames"])

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
        they take their names. Returns the files written."""
        wd, sel, info = self.wd, self.frames, self.info
        if not media.is_video_path(output):
            targets = media.output_frame_paths(output, sel, info.numbering)
            folder = next(iter(targets.values())).parent
            folder.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(folder, targets=[t.name for t in targets.values()])
            with progress.stage("write", len(sel)) as bar:
                for i, target in targets.items():
                    if target.suffix.lower() == ".png":
                        copy_if_changed(wd.out_path(i), target, fsync=True)
                    else:
                        media.write_image(target, media.read_image(wd.out_path(i)), fsync=True)
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
                        yield media.read_image(wd.out_path(i))
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
