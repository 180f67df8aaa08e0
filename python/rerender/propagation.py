"""The propagation stage: key frames -> every frame of an opened :class:`rerender.job.Job`.

Key frames are validated, resized and copied to ``WORK/keys``; the frames are decoded and the flows
computed (shared with the key-frame stage); every segment between keys is propagated and blended
(:mod:`rerender.segments`) and the result written. A repainted key frame recomputes only the (at
most two) segments that touch it; a changed blending option re-blends without re-synthesising.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from . import config as _config
from . import media
from .errors import JobError
from .files import array_digest, copy_if_changed, digest
from .job import Job, StepHook
from .passes import PropagationConfig
from .progress import Progress
from .segments import Fingerprints, Timer, plan_segments, propagate_segments


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
    wd, info, sel = job.wd, job.info, job.frames
    found = key_files(job, keys_dir, progress)
    in_range = {i: p for i, p in found.items() if sel.start <= i < sel.stop}
    skipped = sorted(set(found) - set(in_range))
    if skipped:
        progress.log(f"key frames outside the frame range {sel.start}:{sel.stop} are not used: "
                     + ", ".join(map(str, skipped)))
    if not in_range:
        raise JobError(f"{keys_dir}: none of the key frames ({', '.join(map(str, found))}) lies in the "
                       f"frame range {sel.start}:{sel.stop}")
    h, w = job.hw
    same_folder = keys_dir.resolve() == wd.keys.resolve()
    wd.keys.mkdir(parents=True, exist_ok=True)
    digests = {}
    for idx, path in in_range.items():
        img = media.read_image(path)
        kh, kw = img.shape[:2]
        # compare with the source's aspect ratio: the working size is rounded to multiples of 8
        if abs(kw * info.height - kh * info.width) > 0.01 * kh * info.width:
            raise JobError(f"{path}: key frame is {kw}x{kh}, which does not have the aspect ratio of the "
                           f"video frames ({info.width}x{info.height}; working size {w}x{h})")
        img = media.resize_to(img, (h, w))
        media.write_png_if_changed(wd.key_path(idx), img)
        digests[idx] = array_digest(img)
    if not same_folder:  # keys removed from --keys since the last run must not linger
        for idx, path in media.list_indexed_images(wd.keys).items():
            if idx not in in_range:
                path.unlink()
    return digests


def segment_fingerprints(segments, key_digests: dict[int, str], flow_fp: str,
                         cfg: PropagationConfig) -> dict[str, Fingerprints]:
    synth_cfg = cfg.synthesis_fingerprint()
    out = {}
    for seg in segments:
        synth = digest({"flow": flow_fp, "cfg": synth_cfg, "a": seg.a, "b": seg.b, "frames": seg.frames,
                        "ka": key_digests.get(seg.a), "kb": key_digests.get(seg.b)})
        out[seg.name] = Fingerprints(synth, digest({"synth": synth, "blend": cfg.blend_fingerprint()}))
    return out


def run_propagation(job: Job, keys: str | Path, output: str | Path, cfg: PropagationConfig, progress: Progress,
                    on_step: StepHook | None = None, cuts: list[int] | str | None = None) -> JobResult:
    """Propagate the key frames in ``keys`` over ``job``'s frames and write ``output``.

    ``cuts``: shot cuts (the first frame of every later shot), ``"auto"`` to detect them, or None;
    nothing is propagated across a cut, so every shot needs a key frame. The caller holds the work
    directory's lock (:func:`rerender.pipeline.propagate` does).
    """
    keys_dir, output, wd = Path(keys), Path(output), job.wd
    wd.update_manifest(input=str(job.input), config=_config.to_dict(cfg), job=_config.to_dict(job.cfg),
                       fps=str(job.info.fps), frame_range=[job.frames.start, job.frames.stop])
    result = JobResult(output, wd.root, len(job.frames), float(job.info.fps))
    timer = Timer()
    key_digests = copy_keys(job, keys_dir, progress)  # keys first: a bad key fails before any decoding
    job.decode(progress, on_step)
    t0 = time.thread_time()
    flow_fp = job.compute_flows(progress, on_step)
    timer.add("flow", time.thread_time() - t0)

    key_list = sorted(key_digests)
    for k in key_list:  # key frames are output as they are
        copy_if_changed(wd.key_path(k), wd.out_path(k))
    if cuts == "auto":
        from .keyselect import detect_cuts

        cuts = detect_cuts(job.frames, wd.frame, wd.flow)
        progress.log("shot cuts before frames: " + (", ".join(map(str, cuts)) if cuts else "none found"))
    segments = plan_segments(key_list, job.frames.start, job.frames.stop, list(cuts or ()))
    summary = propagate_segments(wd, segments, segment_fingerprints(segments, key_digests, flow_fp, cfg), cfg,
                                 progress, on_step, timer)
    result.synthesized, result.blended = summary.synthesized, summary.blended
    result.segments_recomputed = summary.recomputed
    result.files = job.write_output(output, progress)
    result.timings = dict(timer.totals)
    return result
