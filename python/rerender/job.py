"""The propagation job: key frames -> every frame of the clip, resumable, stage by stage.

Work directory layout (every file is written atomically: temporary file + ``os.replace``)::

    WORK/manifest.json            config, input fingerprint, frame range, working size, fps, stage stamps
    WORK/frames/NNNN.png          decoded input frames at the working size (NNNN = absolute input index)
    WORK/flow/METHOD/I_J.npy      flow I -> J of consecutive frames (float16, rerender.flow.FlowCache)
    WORK/keys/NNNN.png            key frames at the working size (copied from --keys, or written here
                                  by the diffusion stage)
    WORK/segments/A-B/            one folder per segment between keys A and B ("start-B" before the first
                                  key, "A-end" after the last):
        stamp.json                fingerprints of what the segment was computed from
        fwd/NNNN.npz, bwd/NNNN.npz  candidate and patch-error map of each pass step
        fwd/state.npz, bwd/state.npz  NNF and positional map of the last step (while a pass runs)
        masks/NNNN.png            blend weights of the candidate from key A (255 = only A; binary
                                  for blend "select")
    WORK/out/NNNN.png             final frames

A stage output is reused only when the fingerprints of everything it was computed from match, so a
killed job resumes where it stopped (each pass continues from its last stored step) and produces the
same bytes, and a repainted key frame recomputes only the (at most two) segments that touch it.
Frames are streamed from disk: memory stays bounded by a few frames per worker.
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import io as _pyio
import json
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import config as _config
from . import io as rio
from .progress import QUIET, Progress
from .propagate import KeyFrame, PassState, PropagationConfig, propagate_pass
from .temporal_blend import blend_segment

MANIFEST_VERSION = 1
StepHook = Callable[[str, int], None]


class JobError(ValueError):
    """The job cannot run with these inputs; the message names the file, frame or option at fault."""


class JobCancelled(RuntimeError):
    """Raised inside worker threads after another worker failed or the job was cancelled."""


# ------------------------------------------------------------------------------------------------
# small helpers: hashing and atomic files


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _file_digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode("utf-8", "surrogateescape"))
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()[:20]


def _array_digest(a: np.ndarray) -> str:
    h = hashlib.sha256(str(a.shape).encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:20]


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _write_json(path: Path, obj) -> None:
    _atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _save_npy(path: Path, arr: np.ndarray) -> None:
    buf = _pyio.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    _atomic_write_bytes(path, buf.getvalue())


def _save_npz(path: Path, **arrays) -> None:
    buf = _pyio.BytesIO()
    np.savez(buf, **arrays)
    _atomic_write_bytes(path, buf.getvalue())


def _png_bytes(rgb_or_grey: np.ndarray) -> bytes:
    import cv2

    img = rgb_or_grey[:, :, ::-1] if rgb_or_grey.ndim == 3 and rgb_or_grey.shape[2] == 3 else rgb_or_grey
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise OSError("PNG encoding failed")
    return buf.tobytes()


def _write_png_if_changed(path: Path, img: np.ndarray) -> bool:
    """Write ``img`` unless ``path`` already holds exactly these bytes; True when written."""
    data = _png_bytes(img)
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    _atomic_write_bytes(path, data)
    return True


def _read_grey(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise OSError(f"{path}: cannot read mask")
    return img


def _name(i: int) -> str:
    return f"{i:04d}"


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


# ------------------------------------------------------------------------------------------------
# the work directory


@dataclass
class Segment:
    """Frames strictly between key ``a`` and key ``b`` (None = an open end of the clip)."""

    a: int | None
    b: int | None
    frames: list[int]

    @property
    def name(self) -> str:
        return f"{'start' if self.a is None else _name(self.a)}-{'end' if self.b is None else _name(self.b)}"

    def passes(self) -> list[tuple[str, int, list[int]]]:
        """(direction, key index, frames in pass order)."""
        out = []
        if self.a is not None:
            out.append(("fwd", self.a, list(self.frames)))
        if self.b is not None:
            out.append(("bwd", self.b, list(reversed(self.frames))))
        return out


def plan_segments(keys: list[int], start: int, stop: int) -> list[Segment]:
    """Segments covering every non-key frame of ``start..stop-1`` given sorted key indices."""
    segs = []
    if keys[0] > start:
        segs.append(Segment(None, keys[0], list(range(start, keys[0]))))
    for a, b in zip(keys, keys[1:]):
        if b - a > 1:
            segs.append(Segment(a, b, list(range(a + 1, b))))
    if keys[-1] < stop - 1:
        segs.append(Segment(keys[-1], None, list(range(keys[-1] + 1, stop))))
    return segs


class WorkDir:
    """Paths and readers of a job's work directory (see the module docstring)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.frames = self.root / "frames"
        self.flow_dir = self.root / "flow"
        self.keys = self.root / "keys"
        self.segments = self.root / "segments"
        self.out = self.root / "out"
        self.manifest_path = self.root / "manifest.json"

    def frame_path(self, i: int) -> Path:
        return self.frames / f"{_name(i)}.png"

    def flow_cache(self, method: str):
        from .flow import FlowCache

        self._flow_cache = FlowCache(self.flow_dir, method, frames=self.frame)
        return self._flow_cache

    def out_path(self, i: int) -> Path:
        return self.out / f"{_name(i)}.png"

    def frame(self, i: int) -> np.ndarray:
        return rio.read_image(self.frame_path(i))

    def flow(self, a: int, b: int) -> np.ndarray:
        """flow_{a->b} (float32 H x W x 2), from the flow cache (computed if missing)."""
        return np.ascontiguousarray(self._flow_cache.get(a, b))

    def manifest(self) -> dict:
        return _read_json(self.manifest_path) or {}

    def update_manifest(self, **entries) -> None:
        m = self.manifest()
        m.update(entries)
        m["version"] = MANIFEST_VERSION
        _write_json(self.manifest_path, m)


def default_work_dir(output: str | os.PathLike) -> Path:
    """Where a job keeps its intermediate files unless told otherwise: ``OUT.work`` beside OUT."""
    out = Path(output)
    return out.with_name(out.name + ".work")


# ------------------------------------------------------------------------------------------------
# the job


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


class _Timer:
    def __init__(self):
        self._lock = threading.Lock()
        self.totals: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.totals[stage] = self.totals.get(stage, 0.0) + seconds


def _stage_decode(wd: WorkDir, input_path: Path, info: rio.MediaInfo, sel: range, size: int | None,
                  progress: Progress, on_step: StepHook | None) -> None:
    hw = rio.working_size(info.width, info.height, size)
    digest = _file_digest(list(info.files) if info.is_sequence else [input_path])
    stamp = {"input": digest, "start": sel.start, "stop": sel.stop, "size": list(hw)}
    fp = _sha(stamp)
    m = wd.manifest()
    if m.get("frames", {}).get("fingerprint") != fp:
        # a different input, range or size: nothing downstream is valid any more
        for d in (wd.frames, wd.flow_dir, wd.segments, wd.out):
            shutil.rmtree(d, ignore_errors=True)
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


def _stage_flow(wd: WorkDir, sel: range, cfg: PropagationConfig, progress: Progress,
                on_step: StepHook | None, timer: _Timer) -> str:
    """Forward and backward flows of consecutive frames, cached by :class:`rerender.flow.FlowCache`."""
    fp = _sha({"frames": wd.manifest()["frames"]["fingerprint"], "method": cfg.flow})
    cache = wd.flow_cache(cfg.flow)
    m = wd.manifest()
    if m.get("flow", {}).get("fingerprint") != fp:
        wd.update_manifest(flow={"fingerprint": fp, "complete": False, "method": cfg.flow})
    elif m["flow"].get("complete"):
        return fp
    t0 = time.thread_time()
    with progress.stage("flow", max(0, len(sel) - 1)) as bar:
        def tick(i: int) -> None:
            bar.update()
            if on_step:
                on_step("flow", i - 1)

        cache.precompute(((i, wd.frame(i)) for i in sel), progress=tick)
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
        if abs(kw * h - kh * w) > 0.01 * kh * w:
            raise JobError(f"{path}: key frame is {kw}x{kh}, which does not have the aspect ratio of the "
                           f"video frames ({info.width}x{info.height}; working size {w}x{h})")
        img = rio.resize_to(img, (h, w))
        _write_png_if_changed(wd.keys / f"{_name(idx)}.png", img)
        digests[idx] = _array_digest(img)
    if not same_folder:  # keys removed from --keys since the last run must not linger
        for idx, path in rio.list_indexed_images(wd.keys).items():
            if idx not in in_range:
                path.unlink()
    return digests


class _Cancel:
    def __init__(self):
        self.event = threading.Event()

    def check(self) -> None:
        if self.event.is_set():
            raise JobCancelled("stopped because another part of the job failed")


def _last_done(pass_dir: Path, order: list[int]) -> int:
    """How many steps of a pass are stored (a prefix of ``order``)."""
    n = 0
    for i in order:
        if not (pass_dir / f"{_name(i)}.npz").exists():
            break
        n += 1
    return n


def _load_step(path: Path) -> dict:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _resume_point(pass_dir: Path, order: list[int]) -> tuple[int, PassState | None]:
    """(steps already stored, state to continue from) for a pass.

    Each step stores ``NNNN.npz`` (candidate and error map) and then overwrites ``state.npz`` (what the
    next step needs: NNF and positional map). A job killed between the two writes redoes one step.
    """
    done = _last_done(pass_dir, order)
    state_path = pass_dir / "state.npz"
    if done == len(order):
        state_path.unlink(missing_ok=True)  # complete: the state is no longer needed
        return done, None
    if done == 0:
        return 0, None
    st = _load_step(state_path) if state_path.exists() else None
    if st is not None and done >= 2 and int(st["index"]) == order[done - 2]:
        (pass_dir / f"{_name(order[done - 1])}.npz").unlink()
        done -= 1
    elif st is None or int(st["index"]) != order[done - 1]:
        for i in order[:done]:
            (pass_dir / f"{_name(i)}.npz").unlink()
        return 0, None
    image = _load_step(pass_dir / f"{_name(order[done - 1])}.npz")["image"]
    return done, PassState(order[done - 1], image, st["nnf"].astype(np.int32), st["positions"].astype(np.float32))


def _run_pass(wd: WorkDir, seg_dir: Path, direction: str, key_index: int, order: list[int],
              cfg: PropagationConfig, threads: int, bar, cancel: _Cancel, on_step: StepHook | None,
              timer: _Timer, counter: list[int], lock: threading.Lock) -> None:
    pass_dir = seg_dir / direction
    pass_dir.mkdir(parents=True, exist_ok=True)
    done, state = _resume_point(pass_dir, order)
    if done:
        bar.update(done)
    if done == len(order):
        return
    key = KeyFrame(key_index, rio.read_image(wd.keys / f"{_name(key_index)}.png"), wd.frame(key_index))
    nnf_type = np.int16 if max(key.style.shape) < 32768 else np.int32
    for s in propagate_pass(key, order[done:], wd, cfg, state=state, threads=threads):
        cancel.check()
        _save_npz(pass_dir / f"{_name(s.index)}.npz", image=s.image, error=s.error.astype(np.float32))
        if s.index != order[-1]:
            _save_npz(pass_dir / "state.npz", index=np.int64(s.index), nnf=s.state.nnf.astype(nnf_type),
                      positions=s.state.positions.astype(np.float16))
        else:
            (pass_dir / "state.npz").unlink(missing_ok=True)
        timer.add("guides", s.timings.get("guides", 0.0))
        timer.add("synthesis", s.timings.get("synthesis", 0.0))
        with lock:
            counter[0] += 1
        bar.update()
        if on_step:
            on_step(f"propagate-{direction}", s.index)


def _blend_segment(wd: WorkDir, seg: Segment, seg_dir: Path, cfg: PropagationConfig, bar,
                   on_step: StepHook | None, timer: _Timer) -> int:
    t0 = time.thread_time()
    if seg.a is None or seg.b is None:  # one pass: its candidates are the result
        direction = "fwd" if seg.b is None else "bwd"
        for i in seg.frames:
            z = _load_step(seg_dir / direction / f"{_name(i)}.npz")
            _write_png_if_changed(wd.out_path(i), z["image"])
            bar.update()
            if on_step:
                on_step("blend", i)
    else:
        (seg_dir / "masks").mkdir(exist_ok=True)

        def candidates(i: int):
            za = _load_step(seg_dir / "fwd" / f"{_name(i)}.npz")
            zb = _load_step(seg_dir / "bwd" / f"{_name(i)}.npz")
            return za["image"], zb["image"], za["error"], zb["error"]

        keys = [rio.read_image(wd.keys / f"{_name(k)}.png") for k in (seg.a, seg.b)]
        for i, out, weight in blend_segment(seg.a, seg.b, *keys, candidates, wd.flow, method=cfg.blend,
                                            smoothing=cfg.blend_smoothing, detail=cfg.blend_detail,
                                            poisson=cfg.poisson, poisson_lambda=cfg.poisson_lambda,
                                            scratch=seg_dir / "blend-scratch"):
            _write_png_if_changed(seg_dir / "masks" / f"{_name(i)}.png", weight)
            _write_png_if_changed(wd.out_path(i), out)
            bar.update()
            if on_step:
                on_step("blend", i)
    timer.add("blending", time.thread_time() - t0)
    return len(seg.frames)


def _stage_propagate(wd: WorkDir, segments: list[Segment], fps_by_seg: dict[str, tuple[str, str]],
                     cfg: PropagationConfig, progress: Progress, on_step: StepHook | None,
                     timer: _Timer, result: JobResult) -> None:
    wd.segments.mkdir(parents=True, exist_ok=True)
    todo: list[Segment] = []
    for seg in segments:
        seg_dir = wd.segments / seg.name
        synth_fp, blend_fp = fps_by_seg[seg.name]
        stamp = _read_json(seg_dir / "stamp.json") or {}
        if stamp.get("synth") != synth_fp:
            shutil.rmtree(seg_dir, ignore_errors=True)
            seg_dir.mkdir(parents=True)
            _write_json(seg_dir / "stamp.json", {"synth": synth_fp, "blend": None})
            stamp = {"synth": synth_fp}
        if stamp.get("blend") == blend_fp and all(wd.out_path(i).exists() for i in seg.frames):
            continue
        todo.append(seg)
        result.segments_recomputed.append(seg.name)
    # remove segment folders of an older key layout
    live = {s.name for s in segments}
    for d in wd.segments.iterdir():
        if d.is_dir() and d.name not in live:
            shutil.rmtree(d, ignore_errors=True)
    if not todo:
        return
    n_passes = sum(len(s.passes()) for s in todo)
    workers, threads = cfg.parallelism(n_passes)
    total_steps = sum(len(s.frames) * len(s.passes()) for s in todo)
    cancel = _Cancel()
    counter = [0]
    lock = threading.Lock()
    with progress.stage("propagate", total_steps) as pbar, \
            progress.stage("blend", sum(len(s.frames) for s in todo)) as bbar, \
            cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rerender-pass") as pool:
        pending: dict[cf.Future, Segment] = {}
        remaining = {s.name: len(s.passes()) for s in todo}
        for seg in todo:
            for direction, key_index, order in seg.passes():
                fut = pool.submit(_run_pass, wd, wd.segments / seg.name, direction, key_index, order, cfg,
                                  threads, pbar, cancel, on_step, timer, counter, lock)
                pending[fut] = seg
        try:
            for fut in cf.as_completed(list(pending)):
                fut.result()
                seg = pending[fut]
                remaining[seg.name] -= 1
                if remaining[seg.name] == 0:
                    seg_dir = wd.segments / seg.name
                    result.blended += _blend_segment(wd, seg, seg_dir, cfg, bbar, on_step, timer)
                    _write_json(seg_dir / "stamp.json", {"synth": fps_by_seg[seg.name][0],
                                                         "blend": fps_by_seg[seg.name][1]})
        except BaseException:
            cancel.event.set()
            for f in pending:
                f.cancel()
            raise
        finally:
            result.synthesized += counter[0]


def _write_output(wd: WorkDir, output: Path, sel: range, info: rio.MediaInfo, progress: Progress) -> None:
    if rio.is_video_path(output):
        def frames():
            with progress.stage("write", len(sel)) as bar:
                for i in sel:
                    yield rio.read_image(wd.out_path(i))
                    bar.update()

        whole = sel.start == 0 and sel.stop == info.frame_count
        rio.write_video(frames(), output, info.fps, audio_from=info.path if info.has_audio else None,
                        audio_start=float(sel.start / info.fps),
                        audio_duration=None if whole else float(len(sel) / info.fps))
    else:
        output.mkdir(parents=True, exist_ok=True)
        with progress.stage("write", len(sel)) as bar:
            for i in sel:
                data = wd.out_path(i).read_bytes()
                target = output / f"{_name(i)}.png"
                try:
                    same = target.read_bytes() == data
                except OSError:
                    same = False
                if not same:
                    _atomic_write_bytes(target, data)
                bar.update()


def _select_frames(input_path: Path, frames: slice | str | None,
                   keys_dir: Path | None = None) -> tuple[rio.MediaInfo, range]:
    """Probe the input and resolve ``frames`` ("A:B", a slice or None) to absolute indices."""
    if isinstance(frames, str) or frames is None:
        frames = parse_frame_range(frames)
    info = rio.probe(input_path)
    if keys_dir is not None and not keys_dir.exists():
        raise JobError(f"{keys_dir}: key-frame folder does not exist")
    sel = rio.resolve_frames(frames, info.frame_count, str(input_path))
    if sel.step != 1:
        raise JobError("--frames: only contiguous frame ranges are supported")
    return info, sel


def prepare_frames(input: str | os.PathLike, work_dir: str | os.PathLike, *, size: int | None = None,
                   frames: slice | str | None = None, progress: Progress | None = None,
                   on_step: StepHook | None = None) -> tuple[WorkDir, range]:
    """Decode the selected frames of ``input`` at the working size into ``WORK/frames`` (resumable).

    The key-frame stage calls this before :func:`run_propagation` with the same work directory,
    size and range, so a clip is decoded once and both stages share one flow cache
    (``WorkDir.flow_cache``). Returns the work directory and the absolute frame indices selected.
    """
    input_path = Path(input)
    info, sel = _select_frames(input_path, frames)
    wd = WorkDir(work_dir)
    wd.root.mkdir(parents=True, exist_ok=True)
    _stage_decode(wd, input_path, info, sel, size, progress or QUIET, on_step)
    return wd, sel


def run_propagation(input: str | os.PathLike, keys: str | os.PathLike, output: str | os.PathLike, *,
                    work_dir: str | os.PathLike | None = None, config: PropagationConfig | None = None,
                    frames: slice | str | None = None, progress: Progress | None = None,
                    on_step: StepHook | None = None, announce_done: bool = True) -> JobResult:
    """Propagate the key frames in ``keys`` to every frame of ``input`` and write ``output``.

    ``input``: a video file or an image sequence (folder / pattern). ``keys``: a folder of images named
    by zero-based absolute frame index (``0000.png``, ``0010.png`` ...; may be ``WORK/keys``).
    ``output``: a video path (the input's fps and audio are carried over) or a folder that receives
    ``NNNN.png`` for every selected input frame. ``work_dir``: intermediate files, default ``OUT.work``;
    rerunning with the same work dir resumes and reuses what is still valid. ``frames``: a slice or
    ``"A:B"`` string (zero-based, B exclusive). ``on_step(stage, frame_index)`` is called after every
    stored frame of every stage (from worker threads too); raising from it stops the job, which can
    be resumed later. Progress goes to ``progress``, ending with a "done" event naming ``output``
    unless ``announce_done`` is False (for callers that do more afterwards and announce themselves).

    Raises :class:`JobError` / :class:`rerender.io.MediaError` (both ValueError) for bad inputs.
    """
    cfg = config or PropagationConfig()
    progress = progress or QUIET
    input_path = Path(input)
    keys_dir = Path(keys)
    output = Path(output)
    wd = WorkDir(work_dir if work_dir is not None else default_work_dir(output))
    for other, what in ((wd.root, "the work directory"), (input_path, "the input"), (keys_dir, "the key-frame folder")):
        if output.resolve() == other.resolve():
            raise JobError(f"{output}: the output must not be {what} (it would overwrite it)")
    info, sel = _select_frames(input_path, frames, keys_dir)
    timer = _Timer()
    wd.root.mkdir(parents=True, exist_ok=True)
    wd.update_manifest(input=str(input_path), config=_config.to_dict(cfg), fps=str(info.fps),
                       frame_range=[sel.start, sel.stop])
    result = JobResult(output, wd.root, len(sel), float(info.fps))

    # keys first: a bad key frame fails before any decoding
    hw = rio.working_size(info.width, info.height, cfg.size)
    key_digests = _stage_keys(wd, keys_dir, info, sel, hw, progress)
    _stage_decode(wd, input_path, info, sel, cfg.size, progress, on_step)
    flow_fp = _stage_flow(wd, sel, cfg, progress, on_step, timer)

    key_list = sorted(key_digests)
    for k in key_list:  # key frames are output as they are
        _write_png_if_changed(wd.out_path(k), rio.read_image(wd.keys / f"{_name(k)}.png"))
    segments = plan_segments(key_list, sel.start, sel.stop)
    synth_cfg = cfg.synthesis_fingerprint()
    fps_by_seg = {}
    for seg in segments:
        synth = _sha({"flow": flow_fp, "cfg": synth_cfg, "a": seg.a, "b": seg.b, "frames": seg.frames,
                      "ka": key_digests.get(seg.a), "kb": key_digests.get(seg.b)})
        fps_by_seg[seg.name] = (synth, _sha({"synth": synth, "blend": cfg.blend_fingerprint()}))
    _stage_propagate(wd, segments, fps_by_seg, cfg, progress, on_step, timer, result)

    _write_output(wd, output, sel, info, progress)
    result.timings = dict(timer.totals)
    if announce_done:
        progress.done(str(output))
    return result
