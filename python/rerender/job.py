"""The propagation job: key frames -> every frame of the clip, resumable, stage by stage.

Stages, each stamped in ``WORK/manifest.json`` (layout: :mod:`rerender.workdir`):
keys (validated, resized, copied) -> decode (input at the working size) -> flow (consecutive pairs,
both directions) -> propagate and blend (:mod:`rerender.segments`) -> output (video or folder).

A stage output is reused only when the fingerprints of everything it was computed from match, so a
killed job resumes where it stopped (each pass continues from its last stored step) and produces the
same bytes, and a repainted key frame recomputes only the (at most two) segments that touch it.
Frames are streamed from disk: memory stays bounded by a few frames per worker.

Before anything is written, the job proves that it cannot overwrite its inputs
(:mod:`rerender.overwrite_guard`) and takes the work directory's lock.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import config as _config
from . import io as rio
from .errors import JobCancelled, JobError
from .files import array_digest, copy_if_changed, digest, file_digest, frame_name, remove_stale_temporaries
from .overwrite_guard import KEY_FILE, KEYS, Inputs, check_output, check_work_dir
from .progress import QUIET, Progress
from .propagate import PropagationConfig, pass_memory, usable_memory
from .segments import Fingerprints, StepHook, Timer, plan_segments, propagate_segments
from .workdir import WorkDir, default_work_dir

__all__ = ["JobError", "JobCancelled", "JobResult", "parse_frame_range", "prepare_frames", "run_propagation",
           "default_work_dir", "MIN_FRAME_SIDE"]

# The optical flow (OpenCV DIS) needs frames of at least 12 px on each side.
MIN_FRAME_SIDE = 12


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
class JobResult:
    """What a run did: the output, counts of recomputed work and CPU seconds per stage (summed over
    threads; flow and blending count the calling thread only)."""

    output: Path
    work_dir: Path
    frame_count: int
    fps: float
    synthesized: int = 0            # pass steps computed in this run
    blended: int = 0                # frames blended in this run
    segments_recomputed: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------
# inputs and their protection


def _select_frames(input_path: Path, frames: slice | str | None, size: int | None) -> tuple[rio.MediaInfo, range]:
    """Probe the input and resolve ``frames`` ("A:B", a slice or None) to absolute indices; checks
    that the working size is usable."""
    if isinstance(frames, str) or frames is None:
        frames = parse_frame_range(frames)
    info = rio.probe(input_path)
    sel = rio.resolve_frames(frames, info.frame_count, str(input_path))
    if sel.step != 1:
        raise JobError("--frames: only contiguous frame ranges are supported")
    h, w = rio.working_size(info.width, info.height, size)
    if len(sel) > 1 and min(h, w) < MIN_FRAME_SIDE:
        raise JobError(f"{input_path}: frames of {w}x{h} (working size) are too small for optical flow; "
                       f"each side needs at least {MIN_FRAME_SIDE} px")
    need, have = pass_memory(h * w), usable_memory()
    if need > have:
        raise JobError(f"{input_path}: propagating frames of {w}x{h} needs about {need / 2**30:.1f} GiB, more than "
                       f"this machine's {have / 2**30:.1f} GiB; choose a smaller --size")
    return info, sel


def _inputs(input_path: Path, info: rio.MediaInfo, keys_dir: Path | None = None) -> Inputs:
    inputs = Inputs()
    if info.is_sequence:
        inputs.add_files("an input frame", info.files)
        if input_path.is_dir():
            inputs.add_folder("the input folder", input_path)
    else:
        inputs.add_files("the input", [input_path])
    if keys_dir is not None:
        inputs.add_folder(KEYS, keys_dir)
        inputs.add_files(KEY_FILE, rio.list_indexed_images(keys_dir).values())
    return inputs


# ------------------------------------------------------------------------------------------------
# stages


def _stage_decode(wd: WorkDir, input_path: Path, info: rio.MediaInfo, sel: range, size: int | None,
                  progress: Progress, on_step: StepHook | None) -> None:
    hw = rio.working_size(info.width, info.height, size)
    stamp = {"input": file_digest(list(info.files) if info.is_sequence else [input_path]),
             "start": sel.start, "stop": sel.stop, "size": list(hw)}
    fp = digest(stamp)
    m = wd.manifest()
    if m.get("frames", {}).get("fingerprint") != fp:
        # a different input, range or size: nothing downstream is valid any more
        wd.clear("frames", "flow", "segments", "out")
        wd.update_manifest(frames={"fingerprint": fp, "complete": False, **stamp}, flow={})
    elif m["frames"].get("complete"):
        return
    wd.frames.mkdir(parents=True, exist_ok=True)
    with progress.stage("decode", len(sel)) as bar:
        for i, rgb in zip(sel, rio.read_frames(input_path, frames=slice(sel.start, sel.stop), size=size)):
            if not wd.frame_path(i).exists():
                rio.write_image(wd.frame_path(i), rgb)
            bar.update()
            if on_step:
                on_step("decode", i)
    m = wd.manifest()
    m["frames"]["complete"] = True
    wd.update_manifest(frames=m["frames"])


def _stage_flow(wd: WorkDir, sel: range, progress: Progress, on_step: StepHook | None, timer: Timer) -> str:
    """Forward and backward flows of consecutive frames, cached by :class:`rerender.flow.FlowCache`."""
    fp = digest({"frames": wd.manifest()["frames"]["fingerprint"], "method": wd.flow_method})
    m = wd.manifest()
    if m.get("flow", {}).get("fingerprint") != fp:
        wd.update_manifest(flow={"fingerprint": fp, "complete": False, "method": wd.flow_method})
    elif m["flow"].get("complete"):
        return fp
    t0 = time.thread_time()
    with progress.stage("flow", max(0, len(sel) - 1)) as bar:
        def tick(i: int) -> None:
            bar.update()
            if on_step:
                on_step("flow", i - 1)

        wd.flow_cache.precompute(((i, wd.frame(i)) for i in sel), progress=tick)
    timer.add("flow", time.thread_time() - t0)
    m = wd.manifest()
    m["flow"]["complete"] = True
    wd.update_manifest(flow=m["flow"])
    return fp


def _stage_keys(wd: WorkDir, keys_dir: Path, info: rio.MediaInfo, sel: range, hw: tuple[int, int],
                progress: Progress) -> dict[int, str]:
    """Validate, resize and copy the key frames; returns index -> content digest (keys in range)."""
    found = rio.list_indexed_images(keys_dir)
    if not found:
        raise JobError(f"{keys_dir}: no key frames found (expected images named by zero-based frame "
                       "index, e.g. 0000.png, 0010.png)")
    for idx, path in found.items():
        if idx >= info.frame_count:
            raise JobError(f"{path}: key frame index {idx} is out of range (the input {info.path} has "
                           f"{info.frame_count} frames, indices 0..{info.frame_count - 1})")
    in_range = {i: p for i, p in found.items() if sel.start <= i < sel.stop}
    skipped = sorted(set(found) - set(in_range))
    if skipped:
        progress.log(f"key frames outside the frame range {sel.start}:{sel.stop} are not used: "
                     + ", ".join(map(str, skipped)))
    if not in_range:
        raise JobError(f"{keys_dir}: none of the key frames ({', '.join(map(str, found))}) lies in the "
                       f"frame range {sel.start}:{sel.stop}")
    h, w = hw
    same_folder = keys_dir.resolve() == wd.keys.resolve()
    wd.keys.mkdir(parents=True, exist_ok=True)
    digests = {}
    for idx, path in in_range.items():
        img = rio.read_image(path)
        kh, kw = img.shape[:2]
        # compare with the source's aspect ratio: the working size is rounded to multiples of 8
        if abs(kw * info.height - kh * info.width) > 0.01 * kh * info.width:
            raise JobError(f"{path}: key frame is {kw}x{kh}, which does not have the aspect ratio of the "
                           f"video frames ({info.width}x{info.height}; working size {w}x{h})")
        img = rio.resize_to(img, (h, w))
        rio.write_png_if_changed(wd.key_path(idx), img)
        digests[idx] = array_digest(img)
    if not same_folder:  # keys removed from --keys since the last run must not linger
        for idx, path in rio.list_indexed_images(wd.keys).items():
            if idx not in in_range:
                path.unlink()
    return digests


def _write_output(wd: WorkDir, output: Path, sel: range, info: rio.MediaInfo, progress: Progress,
                  audio: bool) -> None:
    if rio.is_video_path(output):
        remove_stale_temporaries(output.parent, targets=[output.name])
        source = info.path if audio and info.has_audio else None
        if source is not None and (problem := rio.audio_problem(source)):
            progress.log(f"warning: {problem}; writing the video without sound")
            source = None
        whole = sel.start == 0 and sel.stop == info.frame_count

        def encode(audio_from) -> None:
            def frames():
                with progress.stage("write", len(sel)) as bar:
                    for i in sel:
                        yield rio.read_image(wd.out_path(i))
                        bar.update()

            rio.write_video(frames(), output, info.fps, audio_from=audio_from,
                            audio_start=float(sel.start / info.fps),
                            audio_duration=None if whole else float(len(sel) / info.fps), fsync=True)

        try:
            encode(source)
        except rio.AudioError as e:
            if source is None:
                raise
            progress.log(f"warning: {e}; writing the video without sound")
            encode(None)
    else:
        output.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(output)
        with progress.stage("write", len(sel)) as bar:
            for i in sel:
                copy_if_changed(wd.out_path(i), output / f"{frame_name(i)}.png", fsync=True)
                bar.update()


# ------------------------------------------------------------------------------------------------
# entry points


def prepare_frames(input: str | os.PathLike, work_dir: str | os.PathLike, *, size: int | None = None,
                   frames: slice | str | None = None, flow: str = "dis", progress: Progress | None = None,
                   on_step: StepHook | None = None) -> tuple[WorkDir, range]:
    """Decode the selected frames of ``input`` at the working size into ``WORK/frames`` (resumable).

    The key-frame stage calls this before :func:`run_propagation` with the same work directory,
    size and range, so a clip is decoded once and both stages share one flow cache
    (``WorkDir.flow_cache``, backend ``flow``). Returns the work directory and the absolute frame
    indices selected.
    """
    input_path = Path(input)
    info, sel = _select_frames(input_path, frames, size)
    wd = WorkDir(work_dir, flow)
    check_work_dir(wd.root, _inputs(input_path, info))
    with wd.lock():
        _stage_decode(wd, input_path, info, sel, size, progress or QUIET, on_step)
    return wd, sel


def run_propagation(input: str | os.PathLike, keys: str | os.PathLike, output: str | os.PathLike, *,
                    work_dir: str | os.PathLike | None = None, config: PropagationConfig | None = None,
                    frames: slice | str | None = None, progress: Progress | None = None,
                    on_step: StepHook | None = None, announce_done: bool = True, audio: bool = True) -> JobResult:
    """Propagate the key frames in ``keys`` to every frame of ``input`` and write ``output``.

    ``input``: a video file or an image sequence (folder / pattern). ``keys``: a folder of images named
    by zero-based absolute frame index (``0000.png``, ``0010.png`` ...; may be ``WORK/keys``).
    ``output``: a video path (the input's fps and, unless ``audio`` is False, its sound are carried
    over) or a folder that receives ``NNNN.png`` for every selected input frame. ``work_dir``:
    intermediate files, default ``OUT.work``; rerunning with the same work dir resumes and reuses what
    is still valid. ``frames``: a slice or ``"A:B"`` string (zero-based, B exclusive).
    ``on_step(stage, frame_index)`` is called after every stored frame of every stage (from worker
    threads too); raising from it stops the job, which can be resumed later. Progress goes to
    ``progress``, ending with a "done" event naming ``output`` unless ``announce_done`` is False (for
    callers that do more afterwards and announce themselves).

    Raises :class:`JobError` / :class:`rerender.io.MediaError` (both ValueError) for bad inputs,
    before anything is written when the inputs themselves are at fault.
    """
    cfg = config or PropagationConfig()
    progress = progress or QUIET
    input_path, keys_dir, output = Path(input), Path(keys), Path(output)
    wd = WorkDir(work_dir if work_dir is not None else default_work_dir(output), cfg.flow)
    if not keys_dir.exists():
        raise JobError(f"{keys_dir}: key-frame folder does not exist")
    info, sel = _select_frames(input_path, frames, cfg.size)
    inputs = _inputs(input_path, info, keys_dir)
    check_output(output, inputs, is_folder=not rio.is_video_path(output))
    check_work_dir(wd.root, inputs, output)
    timer = Timer()
    with wd.lock():
        wd.update_manifest(input=str(input_path), config=_config.to_dict(cfg), fps=str(info.fps),
                           frame_range=[sel.start, sel.stop])
        result = JobResult(output, wd.root, len(sel), float(info.fps))

        # keys first: a bad key frame fails before any decoding
        hw = rio.working_size(info.width, info.height, cfg.size)
        key_digests = _stage_keys(wd, keys_dir, info, sel, hw, progress)
        _stage_decode(wd, input_path, info, sel, cfg.size, progress, on_step)
        flow_fp = _stage_flow(wd, sel, progress, on_step, timer)

        key_list = sorted(key_digests)
        for k in key_list:  # key frames are output as they are
            copy_if_changed(wd.key_path(k), wd.out_path(k))
        segments = plan_segments(key_list, sel.start, sel.stop)
        synth_cfg = cfg.synthesis_fingerprint()
        fingerprints = {}
        for seg in segments:
            synth = digest({"flow": flow_fp, "cfg": synth_cfg, "a": seg.a, "b": seg.b, "frames": seg.frames,
                            "ka": key_digests.get(seg.a), "kb": key_digests.get(seg.b)})
            fingerprints[seg.name] = Fingerprints(synth, digest({"synth": synth, "blend": cfg.blend_fingerprint()}))
        summary = propagate_segments(wd, segments, fingerprints, cfg, progress, on_step, timer)
        result.synthesized, result.blended = summary.synthesized, summary.blended
        result.segments_recomputed = summary.recomputed

        _write_output(wd, output, sel, info, progress, audio)
    result.timings = dict(timer.totals)
    if announce_done:
        progress.done(str(output))
    return result
