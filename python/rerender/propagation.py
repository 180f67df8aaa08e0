"""The propagation stage: key frames -> every frame of an opened :class:`rerender.job.Job`.

Key frames are validated, resized and copied to ``WORK/keys``; the frames are decoded (shared with
the key-frame stage); every segment between keys is propagated and blended (:mod:`rerender.segments`),
in threads of this process or, given a ``distributed.Client``, as tasks of a Dask cluster
(:mod:`rerender.cluster`); the result is written. A repainted key frame recomputes only the (at
most two) segments that touch it; a changed blending option re-blends without re-synthesising
when the job keeps its intermediates (and re-synthesises otherwise).

:func:`run_propagation` takes every key at once (``rerender propagate``); :class:`KeyStream` takes
them one by one as the key-frame stage writes them, so that a cluster starts on a segment as soon
as both its keys exist (``rerender run --scheduler``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import config as _config
from . import media
from .errors import JobError
from .files import array_digest, digest, frame_name, link_or_copy, record_entry
from .job import Job, StepHook
from .output import write_output
from .passes import PropagationConfig
from .progress import QUIET, Progress
from .segments import (Fingerprints, PropagateSummary, Timer, plan_segments, propagate_segments,
                       remove_other_segments)


@dataclass
class JobResult:
    """What a run did: the output, counts of recomputed work and CPU seconds per stage (summed over
    threads and workers; blending counts the calling thread only on one machine)."""

    output: Path
    work_dir: Path
    frame_count: int
    fps: float
    synthesized: int = 0            # pass steps computed in this run
    blended: int = 0                # frames blended in this run
    segments_recomputed: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0            # wall time of the stage
    work_dir_bytes: int = 0         # size of the work directory at the end
    tasks_retried: int = 0          # cluster tasks run again after their worker was lost
    files: list[Path] = field(default_factory=list)  # what was written: frame files in order, or the video


def key_files(job: Job, keys_dir: Path, progress: Progress) -> dict[int, Path]:
    """The key frames of ``keys_dir`` by zero-based index. Their names count either indices or,
    for a numbered sequence, its frame numbers (``shot.1001.png``); ``JobConfig.key_numbering``
    says which, or "auto" tells them apart and refuses names that fit both differently."""
    info = job.info
    numbering = info.numbering
    found = media.list_indexed_images(keys_dir, prefix=numbering.prefix if numbering else "")
    if not found:
        raise JobError(f"{keys_dir}: no key frames found (expected images named by zero-based frame "
                       "index, e.g. 0000.png, 0010.png, or by the sequence's frame numbers)")
    numbers = numbering.numbers if numbering is not None else None
    mode = job.cfg.key_numbering
    if mode == "auto":
        fits_index = all(n < info.frame_count for n in found)
        fits_frame = numbers is not None and all(n in numbers for n in found)
        same = numbers is None or numbers == tuple(range(info.frame_count))
        if fits_index and fits_frame and not same:
            raise JobError(f"{keys_dir}: the key frames' names ({', '.join(map(str, list(found)[:4]))}...) fit both the "
                           f"sequence's frame numbers ({numbers[0]}..{numbers[-1]}) and zero-based indices "
                           f"(0..{info.frame_count - 1}); say which with --key-numbering frame or index")
        mode = "frame" if fits_frame and not same else "index"
        if mode == "frame":
            progress.log(f"key frames are named by the sequence's frame numbers ({numbers[0]}..{numbers[-1]})")
    if mode == "frame":
        if numbers is None:
            raise JobError(f"--key-numbering frame: {info.path} has no frame numbers in its file names")
        position = {n: i for i, n in enumerate(numbers)}
        for n, path in found.items():
            if n not in position:
                raise JobError(f"{path}: key frame number {n} is not a frame of {info.path} "
                               f"(frames {numbers[0]}..{numbers[-1]})")
        return {position[n]: path for n, path in found.items()}
    for idx, path in found.items():
        if idx >= info.frame_count:
            raise JobError(f"{path}: key frame index {idx} is out of range (the input {info.path} has "
                           f"{info.frame_count} frames, indices 0..{info.frame_count - 1})")
    return found


def copy_keys(job: Job, keys_dir: Path, progress: Progress) -> dict[int, str]:
    """Validate, resize and copy the key frames to ``WORK/keys``; returns index -> content digest
    of the keys inside the frame range."""
    wd = job.wd
    in_range = _keys_in_range(job, keys_dir, progress)
    same_folder = keys_dir.resolve() == wd.keys.resolve()
    wd.keys.mkdir(parents=True, exist_ok=True)
    digests = {idx: store_key(job, idx, path, keys_dir) for idx, path in in_range.items()}
    if not same_folder:  # keys removed from --keys since the last run must not linger
        for idx, path in media.list_indexed_images(wd.keys).items():
            if idx not in in_range:
                path.unlink()
    return digests


def check_keys(job: Job, keys_dir: str | Path, cuts: list[int] | str | None = None) -> None:
    """Every check of the key frames, before the work directory is touched (a refused job leaves
    nothing behind): their names and range, each one readable with the video's aspect ratio, and,
    with explicit ``cuts``, a key in every shot."""
    keys_dir = Path(keys_dir)
    in_range = _keys_in_range(job, keys_dir, QUIET)
    for path in in_range.values():
        _key_image(job, path, keys_dir)
    if isinstance(cuts, list):
        plan_segments(sorted(in_range), job.frames.start, job.frames.stop, cuts)


def _keys_in_range(job: Job, keys_dir: Path, progress: Progress) -> dict[int, Path]:
    sel = job.frames
    found = key_files(job, keys_dir, progress)
    in_range = {i: p for i, p in found.items() if sel.start <= i < sel.stop}
    skipped = sorted(set(found) - set(in_range))
    if skipped:
        progress.log(f"key frames outside the frame range {sel.start}:{sel.stop} are not used: "
                     + ", ".join(map(str, skipped)))
    if not in_range:
        raise JobError(f"{keys_dir}: none of the key frames ({', '.join(map(str, found))}) lies in the "
                       f"frame range {sel.start}:{sel.stop}")
    return in_range


def _key_image(job: Job, path: Path, keys_dir: Path) -> np.ndarray:
    """Key frame ``path`` read and checked: the video's aspect ratio (as the working size keeps it),
    and, for a key in the work directory's own ``keys/`` (which rerender rewrites), the working size."""
    info, (h, w), wd = job.info, job.hw, job.wd
    if wd.deep:
        img, _ = media.read_plate(path)
        img = img if img.dtype == np.uint8 else media.to_working(img, job.colour)
    else:
        img = media.read_image(path)
    kh, kw = img.shape[:2]
    if not media.aspect_matches(kw, kh, info.width, info.height):
        raise JobError(f"{path}: key frame is {kw}x{kh}, which does not have the aspect ratio of the "
                       f"video frames ({info.width}x{info.height}; working size {w}x{h})")
    if (kh, kw) != (h, w) and keys_dir.resolve() == wd.keys.resolve():
        raise JobError(f"{path}: key frame is {kw}x{kh}, but the work directory's keys must be at the working "
                       f"size {w}x{h} (resizing it there would replace your painting); put repainted keys in a "
                       "folder of their own and pass that folder with --keys")
    return img


def store_key(job: Job, idx: int, path: Path, keys_dir: Path | None = None) -> str:
    """Check key frame ``idx`` (the image at ``path`` in ``keys_dir``) and store it at the working
    size in ``WORK/keys`` in the job's working format (8-bit keys stay uint8, also in a deep job
    where they are exact as they are; a 16-bit or float key of a deep job keeps its depth); returns
    its content digest."""
    (h, w), wd = job.hw, job.wd
    img = _key_image(job, path, path.parent if keys_dir is None else keys_dir)
    img = np.ascontiguousarray(media.resize_to(img, (h, w)))
    target = wd.keys / f"{frame_name(idx)}{'.png' if img.dtype == np.uint8 else '.exr'}"
    if path.parent.resolve() != wd.keys.resolve():  # one file per key: a repainted key may change depth
        for old in wd.keys.glob(f"{frame_name(idx)}.*"):
            if old != target and old.suffix in (".png", ".exr"):
                old.unlink()
    if target.resolve() != path.resolve():
        wd.write_working(target, img)
    else:  # a key rendered into WORK/keys is the source itself: what is there now is what counts
        record_entry(target)
    return array_digest(img)


def output_key(job: Job, idx: int) -> None:
    """Key frames are output as they are (after decoding, which may clear ``WORK/out``)."""
    wd = job.wd
    wd.out.mkdir(parents=True, exist_ok=True)
    key, out = wd.key_path(idx), wd.out_path(idx)
    if key.suffix == out.suffix:  # already in the output's format: the same file, hard-linked
        link_or_copy(key, out)     # (a long shot of dense keys would otherwise hold them twice)
        record_entry(out)
    else:  # an 8-bit key of a deep job
        wd.write_out(idx, wd.key(idx))


def segment_fingerprints(segments, key_digests: dict[int, str], flow_fp: str,
                         cfg: PropagationConfig, matte_fp: str | None = None) -> dict[str, Fingerprints]:
    synth_cfg = cfg.synthesis_fingerprint()
    out = {}
    for seg in segments:
        synth = digest({"flow": flow_fp, "cfg": synth_cfg, "a": seg.a, "b": seg.b, "frames": seg.frames,
                        "ka": key_digests.get(seg.a), "kb": key_digests.get(seg.b),
                        **({"matte": matte_fp} if matte_fp else {})})
        out[seg.name] = Fingerprints(synth, digest({"synth": synth, "blend": cfg.blend_fingerprint()}))
    return out


def _start(job: Job, cfg: PropagationConfig) -> None:
    job.wd.update_manifest(input=str(job.input), config=_config.to_dict(cfg), job=_config.to_dict(job.cfg),
                           fps=str(job.info.fps), frame_range=[job.frames.start, job.frames.stop])


def run_propagation(job: Job, keys: str | Path, output: str | Path, cfg: PropagationConfig, progress: Progress,
                    on_step: StepHook | None = None, cuts: list[int] | str | None = None,
                    client=None) -> JobResult:
    """Propagate the key frames in ``keys`` over ``job``'s frames and write ``output``.

    ``cuts``: shot cuts (the first frame of every later shot), ``"auto"`` to detect them, or None;
    nothing is propagated across a cut, so every shot needs a key frame. ``client``: a
    ``distributed.Client`` to run the segments on a Dask cluster (None: threads of this process).
    The caller holds the work directory's lock (:func:`rerender.pipeline.propagate` does).
    """
    keys_dir, output, wd = Path(keys), Path(output), job.wd
    t0 = time.perf_counter()
    _start(job, cfg)
    result = JobResult(output, wd.root, len(job.frames), float(job.info.fps))
    timer = Timer()
    key_digests = copy_keys(job, keys_dir, progress)  # keys first: a bad key fails before any decoding
    job.decode(progress, on_step)
    flow_fp = job.flow_fingerprint()
    for k in sorted(key_digests):
        output_key(job, k)
    if cuts == "auto":
        cuts = detected_cuts(job, flow_fp, progress)
    segments = plan_segments(sorted(key_digests), job.frames.start, job.frames.stop, list(cuts or ()))
    fingerprints = segment_fingerprints(segments, key_digests, flow_fp, cfg, job.matte_fingerprint())
    if client is None:
        summary = propagate_segments(wd, segments, fingerprints, cfg, progress, on_step, timer,
                                     keep_intermediates=job.cfg.keep_intermediates)
    else:
        from .cluster import ClusterRun

        remove_other_segments(wd, segments)
        run = ClusterRun(client, wd, segments, cfg, progress, on_step, timer, job.cfg.keep_intermediates)
        try:
            for seg in segments:
                run.submit(seg, fingerprints[seg.name])
        except BaseException:
            run.stop()
            raise
        summary = run.wait()
    return _finish(job, output, progress, result, summary, t0)


def detected_cuts(job: Job, flow_fp: str, progress: Progress) -> list[int]:
    """Shot cuts found in the job's frames (:func:`rerender.keyselect.detect_cuts`), remembered in the
    manifest by the flows' fingerprint: a resumed job does not recompute every flow of the shot (the
    finished segments dropped theirs) just to find the same cuts again."""
    from .keyselect import detect_cuts

    wd = job.wd
    known = wd.manifest().get("cuts") or {}
    if known.get("flow") == flow_fp and known.get("frames") == [job.frames.start, job.frames.stop]:
        cuts = list(known["cuts"])
    else:
        cuts = detect_cuts(job.frames, wd.frame8, wd.flow)
        wd.update_manifest(cuts={"flow": flow_fp, "frames": [job.frames.start, job.frames.stop], "cuts": cuts})
    progress.log("shot cuts before frames: " + (", ".join(map(str, cuts)) if cuts else "none found"))
    return cuts


def _finish(job: Job, output: Path, progress: Progress, result: JobResult, summary: PropagateSummary,
            t0: float) -> JobResult:
    result.synthesized, result.blended = summary.synthesized, summary.blended
    result.segments_recomputed = summary.recomputed
    result.tasks_retried = summary.retried
    result.timings = dict(summary.timings)
    if summary.retried:
        progress.log(f"propagate: {summary.retried} task(s) ran again after their worker was lost")
    result.files = write_output(job, output, progress)
    if not job.cfg.keep_intermediates:
        # the segments dropped their own flows; consecutive pairs left over are those across shot
        # cuts (computed to find them). The key-frame stage's pairs (anchor -> key) stay: a re-render
        # of the keys with new options reuses them.
        sel = job.frames
        job.wd.flow_cache.drop(p for i in range(sel.start, sel.stop - 1) for p in ((i, i + 1), (i + 1, i)))
    result.seconds = time.perf_counter() - t0
    result.work_dir_bytes = job.wd.size()
    n = max(1, len(job.frames))
    progress.log(f"propagation: {len(job.frames)} frames in {_duration(result.seconds)} "
                 f"({len(job.frames) / max(result.seconds, 1e-9):.2f} frames/s)")
    progress.log(f"work directory {job.wd.root}: {_size(result.work_dir_bytes)} "
                 f"({_size(result.work_dir_bytes / n)} per frame)")
    return result


class KeyStream:
    """The propagation stage fed one key frame at a time, on a Dask cluster: each segment's tasks
    are submitted as soon as both its keys are stored (``rerender run --scheduler``).

    Create it after the frames are decoded, call :meth:`key_ready` for every key as it is written
    to ``WORK/keys`` (in any order), then :meth:`finish`; on any failure call :meth:`stop` before the
    work directory's lock is released.
    """

    def __init__(self, job: Job, keys: list[int], cfg: PropagationConfig, progress: Progress, client,
                 on_step: StepHook | None = None, cuts: list[int] = ()):
        from .cluster import ClusterRun

        self.job, self.cfg, self.progress = job, cfg, progress
        self.t0 = time.perf_counter()
        _start(job, cfg)
        self.flow_fp = job.flow_fingerprint()
        self.keys = sorted(keys)
        self.segments = plan_segments(self.keys, job.frames.start, job.frames.stop, list(cuts))
        self.digests: dict[int, str] = {}
        self._submitted: set[str] = set()
        remove_other_segments(job.wd, self.segments)
        self.run = ClusterRun(client, job.wd, self.segments, cfg, progress, on_step, Timer(),
                              job.cfg.keep_intermediates)

    def key_ready(self, idx: int) -> None:
        """Key ``idx`` is stored in ``WORK/keys``: check it and submit the segments it completes."""
        if idx not in self.keys:
            raise JobError(f"key frame {idx} is not one of the keys planned for this job")
        self.digests[idx] = store_key(self.job, idx, self.job.wd.key_path(idx))
        output_key(self.job, idx)
        for seg in self.segments:
            if seg.name in self._submitted or idx not in (seg.a, seg.b):
                continue
            if all(k is None or k in self.digests for k in (seg.a, seg.b)):
                fp = segment_fingerprints([seg], self.digests, self.flow_fp, self.cfg,
                                          self.job.matte_fingerprint())[seg.name]
                self._submitted.add(seg.name)
                self.run.submit(seg, fp)

    def finish(self, output: str | Path) -> JobResult:
        """Wait for every segment and write ``output``."""
        missing = [k for k in self.keys if k not in self.digests]
        if missing:
            raise JobError(f"key frames {', '.join(map(str, missing))} were never stored; cannot propagate")
        result = JobResult(Path(output), self.job.wd.root, len(self.job.frames), float(self.job.info.fps))
        return _finish(self.job, Path(output), self.progress, result, self.run.wait(), self.t0)

    def stop(self) -> None:
        self.run.stop()


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h {s % 3600 // 60:02d}m" if s >= 3600 else (f"{s // 60}m {s % 60:02d}s" if s >= 60 else
                                                                   f"{seconds:.1f} s")


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
