"""The propagation engine: segments between key frames, their passes, resume, parallel runs, blending.

A segment holds the frames strictly between two key frames (or between a key and an open end of
the clip). Each key of a segment propagates one *pass* across it (forward from the earlier key,
backward from the later one); when both passes are stored, the segment's frames are blended.
Passes of all segments run in a thread pool; everything they need is in one :class:`RunContext`.

Per segment, in ``WORK/segments/A-B/``::

    stamp.json                    fingerprints of what the segment was computed from
    fwd/NNNN.npz, bwd/NNNN.npz    candidate and patch-error map (bfloat16) of each pass step (raw;
                                  PNG when the job keeps its intermediates)
    fwd/state.npz, bwd/state.npz  NNF and positional map of the last step (while a pass runs)
    masks/NNNN.png                blend weight of the candidate from key A (255 = only A; binary for
                                  blend "select")

Flows are computed by the passes as they need them (each consecutive pair belongs to exactly one
segment, :meth:`Segment.flow_pairs`). Once a segment is blended and stamped, its intermediates --
candidates, masks, its flows -- are dropped unless the job keeps them (``keep_intermediates``):
what stays is ``stamp.json`` and the output frames, which is all a resumed job needs to skip it.
The price: a later change of a blending option re-synthesises the segment instead of re-blending.

The functions here are the units both engines run: :func:`propagate_segments` (threads of this
process) and :mod:`rerender.cluster` (tasks of a Dask cluster sharing the work directory).
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import JobCancelled, JobError
from .files import (DamagedEntry, entry_ok, frame_name, load_npz, read_json, remove_entry, report_damaged, save_npz,
                    write_json)
from .progress import Progress, Stage
from .packing import load_packed, quantise_map, save_packed
from .passes import KeyFrame, PassState, PropagationConfig, propagate_pass
from .memory import cache_budget
from .recent import Recent
from . import temporal_blend
from .workdir import WorkDir

StepHook = Callable[[str, int], None]


@dataclass
class Segment:
    """Frames strictly between key ``a`` and key ``b``; None on a side that is an end of the clip or a
    shot cut (nothing is propagated across it), named by ``start``/``end`` or ``cut`` + frame."""

    a: int | None
    b: int | None
    frames: list[int]
    cut_before: bool = False   # the open start is a shot cut (frames[0] starts a shot)
    cut_after: bool = False    # the open end is a shot cut (a shot starts after frames[-1])

    @property
    def name(self) -> str:
        first = (f"cut{frame_name(self.frames[0])}" if self.cut_before else "start") if self.a is None else frame_name(self.a)
        last = (f"cut{frame_name(self.frames[-1] + 1)}" if self.cut_after else "end") if self.b is None else frame_name(self.b)
        return f"{first}-{last}"

    def flow_pairs(self) -> list[tuple[int, int]]:
        """The flows its passes and blend use, (i, j) = flow_{i->j}: both directions of every
        consecutive pair from its first key (or first frame) to its last key (or last frame)."""
        first = self.frames[0] if self.a is None else self.a
        last = self.frames[-1] if self.b is None else self.b
        return [p for i in range(first, last) for p in ((i, i + 1), (i + 1, i))]

    def steps(self) -> int:
        """Pass steps to propagate it: one per frame and pass."""
        return len(self.frames) * len(self.passes())

    def passes(self) -> list[tuple[str, int, list[int]]]:
        """(direction, key index, frames in pass order)."""
        out = []
        if self.a is not None:
            out.append(("fwd", self.a, list(self.frames)))
        if self.b is not None:
            out.append(("bwd", self.b, list(reversed(self.frames))))
        return out


def plan_segments(keys: list[int], start: int, stop: int, cuts: list[int] = ()) -> list[Segment]:
    """Segments covering every non-key frame of ``start..stop-1`` given sorted key indices; a segment
    never spans a shot cut (``cuts``: the first frame of every later shot)."""
    bounds = [start] + sorted(c for c in cuts if start < c < stop) + [stop]
    segs = []
    for lo, hi in zip(bounds, bounds[1:]):  # one shot at a time
        shot_keys = [k for k in keys if lo <= k < hi]
        if not shot_keys:
            raise JobError(f"key frames: the shot of frames {lo}..{hi - 1} has no key frame (nothing is "
                           "propagated across a shot cut); add one")
        if shot_keys[0] > lo:
            segs.append(Segment(None, shot_keys[0], list(range(lo, shot_keys[0])), cut_before=lo != start))
        for a, b in zip(shot_keys, shot_keys[1:]):
            if b - a > 1:
                segs.append(Segment(a, b, list(range(a + 1, b))))
        if shot_keys[-1] < hi - 1:
            segs.append(Segment(shot_keys[-1], None, list(range(shot_keys[-1] + 1, hi)), cut_after=hi != stop))
    return segs


class Timer:
    """CPU seconds per stage, summed over threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self.totals: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.totals[stage] = self.totals.get(stage, 0.0) + seconds


class Candidates:
    """The pass steps of the segments being made: written to ``PASS/NNNN.npz`` (what a resumed job
    needs) and kept in memory until their segment is blended, so that the blend does not decode
    them again (it reads each frame's pair three times). The error map is kept as the file holds it
    (bfloat16 values), so a blend from memory and one from the files give the same bytes; past the
    memory budget, or in another process (a cluster task), the files are read.

    ``compact``: the files in their compact encodings (PNG), for work directories that keep them;
    else raw (about 2x the bytes, no encoding: a step's candidate costs ~1 ms instead of ~6 ms at
    344 x 256, and the files go when the segment is finished)."""

    def __init__(self, budget: int | None = None, compact: bool = True):
        self._memory = Recent(cache_budget() if budget is None else budget)
        self.compact = compact

    def put(self, pass_dir: Path, index: int, image: np.ndarray, error: np.ndarray) -> None:
        error = quantise_map(np.asarray(error, np.float32))
        save_packed(pass_dir / f"{frame_name(index)}.npz", compact=self.compact, image=image, error=error)
        self._memory.put((str(pass_dir), index), (image, error))

    def get(self, pass_dir: Path, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(image, error map) of step ``index``."""
        kept = self._memory.get((str(pass_dir), index))
        if kept is not None:
            return kept
        z = load_packed(pass_dir / f"{frame_name(index)}.npz")
        return z["image"], z["error"]

    def forget(self, seg_dir: Path) -> None:
        prefix = str(seg_dir) + "/"
        self._memory.drop_where(lambda key: not key[0].startswith(prefix))


@dataclass
class RunContext:
    """What every pass and blend of one propagation run shares."""

    wd: WorkDir
    cfg: PropagationConfig
    threads: int
    propagate_bar: Stage
    blend_bar: Stage
    on_step: StepHook | None = None
    timer: Timer = field(default_factory=Timer)
    cancelled: threading.Event = field(default_factory=threading.Event)
    pass_failed: threading.Event = field(default_factory=threading.Event)  # no queued pass may start
    steps: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    candidates: Candidates = field(default_factory=Candidates)
    keep_masks: bool = True  # write the blend weights (masks/): only kept intermediates need them

    def check(self) -> None:
        if self.cancelled.is_set():
            raise JobCancelled("stopped because another part of the job failed")

    def stepped(self, stage: str, index: int) -> None:
        if self.on_step:
            self.on_step(stage, index)

    def count_step(self) -> None:
        with self._lock:
            self.steps += 1


# ------------------------------------------------------------------------------------------------
# one pass


def _last_done(pass_dir: Path, order: list[int]) -> int:
    """How many steps of a pass are stored (a prefix of ``order``)."""
    n = 0
    for i in order:
        if not entry_ok(pass_dir / f"{frame_name(i)}.npz"):  # missing, or damaged (and reported)
            break
        n += 1
    return n


def _resume_point(pass_dir: Path, order: list[int]) -> tuple[int, PassState | None]:
    """(steps already stored, state to continue from) for a pass.

    Each step stores ``NNNN.npz`` (candidate and error map) and then overwrites ``state.npz`` (what the
    next step needs: NNF and positional map). A job killed between the two writes redoes one step.
    """
    try:
        return _resume_from(pass_dir, order)
    except DamagedEntry as e:  # a cache: what cannot be read is computed again
        report_damaged(e.path)
        for p in pass_dir.glob("*.npz"):
            remove_entry(p)
        return 0, None


def _resume_from(pass_dir: Path, order: list[int]) -> tuple[int, PassState | None]:
    done = _last_done(pass_dir, order)
    state_path = pass_dir / "state.npz"
    if done == len(order):
        state_path.unlink(missing_ok=True)  # complete: the state is no longer needed
        return done, None
    if done == 0:
        return 0, None
    st = load_npz(state_path) if state_path.exists() else None
    if st is not None and done >= 2 and int(st["index"]) == order[done - 2]:
        (pass_dir / f"{frame_name(order[done - 1])}.npz").unlink()
        done -= 1
    elif st is None or int(st["index"]) != order[done - 1]:
        for i in order[:done]:
            (pass_dir / f"{frame_name(i)}.npz").unlink()
        return 0, None
    image = load_packed(pass_dir / f"{frame_name(order[done - 1])}.npz")["image"]
    return done, PassState(order[done - 1], image, st["nnf"].astype(np.int32), st["positions"].astype(np.float32))


class _TimedSource:
    """The work directory as a pass's frame source, timing the flows it computes on the way (CPU
    seconds of this thread), so that flow time is not counted as guide time."""

    def __init__(self, wd: WorkDir, timer: Timer):
        self.wd, self.timer, self._pending = wd, timer, 0.0

    def frame(self, index: int) -> np.ndarray:
        return self.wd.frame(index)

    def matte(self, index: int) -> np.ndarray | None:
        return self.wd.matte(index)

    def flow(self, a: int, b: int) -> np.ndarray:
        return self._timed(self.wd.flow, a, b)

    def occluded(self, a: int, b: int) -> np.ndarray:
        return self._timed(self.wd.flow_cache.occluded, a, b)

    def _timed(self, fn, a: int, b: int) -> np.ndarray:
        t0 = time.thread_time()
        out = fn(a, b)
        dt = time.thread_time() - t0
        self.timer.add("flow", dt)
        self._pending += dt
        return out

    def take(self) -> float:
        """Flow seconds since the last call (the step's guide time includes them)."""
        dt, self._pending = self._pending, 0.0
        return dt


def run_pass(ctx: RunContext, seg_dir: Path, direction: str, key_index: int, order: list[int]) -> None:
    """Propagate key ``key_index`` over ``order``, storing every step; resumes a stopped pass. A pass
    that fails (or is interrupted) keeps queued passes from starting: the pool would otherwise start
    the next one before the calling thread has seen the failure (and cancelled the rest)."""
    if ctx.pass_failed.is_set():
        raise JobCancelled("stopped because another part of the job failed")
    try:
        _run_pass(ctx, seg_dir, direction, key_index, order)
    except BaseException:
        ctx.pass_failed.set()
        raise


def _run_pass(ctx: RunContext, seg_dir: Path, direction: str, key_index: int, order: list[int]) -> None:
    pass_dir = seg_dir / direction
    pass_dir.mkdir(parents=True, exist_ok=True)
    done, state = _resume_point(pass_dir, order)
    if done:
        ctx.propagate_bar.skip(done)
    if done == len(order):
        return
    wd = ctx.wd
    key = KeyFrame(key_index, wd.key(key_index), wd.frame(key_index), matte=wd.matte(key_index))
    nnf_type = np.int16 if max(key.style.shape) < 32768 else np.int32
    source = _TimedSource(ctx.wd, ctx.timer)
    ctx.check()
    # a stop is checked after each step is stored: a step computed while Ctrl-C waited is kept, not redone
    for s in propagate_pass(key, order[done:], source, ctx.cfg, state=state, threads=ctx.threads):
        ctx.candidates.put(pass_dir, s.index, s.image, s.error)
        if s.index != order[-1]:
            save_npz(pass_dir / "state.npz", index=np.int64(s.index), nnf=s.state.nnf.astype(nnf_type),
                     positions=s.state.positions.astype(np.float16))
        else:
            (pass_dir / "state.npz").unlink(missing_ok=True)
        ctx.timer.add("guides", s.timings.get("guides", 0.0) - source.take())
        ctx.timer.add("synthesis", s.timings.get("synthesis", 0.0))
        ctx.count_step()
        ctx.propagate_bar.update()
        ctx.stepped(f"propagate-{direction}", s.index)
        ctx.check()


# ------------------------------------------------------------------------------------------------
# blending a segment


def blend_segment(ctx: RunContext, seg: Segment, seg_dir: Path) -> int:
    """Blend the stored candidates of ``seg`` into ``WORK/out``; returns the number of frames."""
    from .media import write_png_if_changed

    wd, cfg = ctx.wd, ctx.cfg
    t0 = time.thread_time()
    if seg.a is None or seg.b is None:  # one pass: its candidates are the result
        direction = "fwd" if seg.b is None else "bwd"
        for i in seg.frames:
            wd.write_out(i, ctx.candidates.get(seg_dir / direction, i)[0])
            ctx.blend_bar.update()
            ctx.stepped("blend", i)
    else:
        if ctx.keep_masks:
            (seg_dir / "masks").mkdir(exist_ok=True)

        def candidates(i: int):
            (ia, ea), (ib, eb) = ctx.candidates.get(seg_dir / "fwd", i), ctx.candidates.get(seg_dir / "bwd", i)
            return ia, ib, ea, eb

        def region(i: int):
            matte = wd.matte(i)
            if matte is None:
                return None
            from .matte import synthesis_region

            return synthesis_region(matte, cfg.matte_grow + cfg.patch_size // 2) > 0

        key_a, key_b = wd.key(seg.a), wd.key(seg.b)
        # the soft blend's per-frame float maps (weight, gate, backward state: 20 bytes a pixel) stay
        # in memory unless a long segment at high resolution would need more than a budget
        in_memory = len(seg.frames) * key_a.shape[0] * key_a.shape[1] * 20 <= cache_budget() // 2
        inputs = temporal_blend.SegmentInputs(
            seg.a, seg.b, key_a, key_b, candidates, wd.flow, occluded=wd.flow_cache.occluded,
            region=region if wd.matted else None, scratch=None if in_memory else seg_dir / "blend-scratch")
        for i, out, weight in temporal_blend.blend_segment(inputs, cfg.blend_options()):
            ctx.check()
            if ctx.keep_masks:
                write_png_if_changed(seg_dir / "masks" / f"{frame_name(i)}.png", weight)
            wd.write_out(i, out)
            ctx.blend_bar.update()
            ctx.stepped("blend", i)
    ctx.candidates.forget(seg_dir)
    ctx.timer.add("blending", time.thread_time() - t0)
    return len(seg.frames)


# ------------------------------------------------------------------------------------------------
# a segment's life: prepared (is there work?), passes, blend, finished (stamped, intermediates dropped)


@dataclass
class Fingerprints:
    """What a segment's stored results were computed from: its passes (``synth``) and its blend."""

    synth: str
    blend: str


def prepare_segment(wd: WorkDir, seg: Segment, fp: Fingerprints) -> bool:
    """Make ``seg``'s folder agree with ``fp``; True when the segment has work left (passes or blend).

    Results computed from other inputs or synthesis options are deleted; a finished segment
    (stamped with ``fp`` and with every output frame present) needs nothing.
    """
    seg_dir = wd.segments / seg.name
    stamp = read_json(seg_dir / "stamp.json") or {}
    if stamp.get("synth") != fp.synth:
        shutil.rmtree(seg_dir, ignore_errors=True)
        seg_dir.mkdir(parents=True)
        write_json(seg_dir / "stamp.json", {"synth": fp.synth, "blend": None})
        return True
    return not (stamp.get("blend") == fp.blend and all(wd.out_ok(i) for i in seg.frames))


INTERMEDIATES = ("fwd", "bwd", "masks")  # a segment's sub-folders that only its own run needs


def finish_segment(wd: WorkDir, seg: Segment, fp: Fingerprints, keep_intermediates: bool) -> None:
    """Stamp a blended segment as done, then (unless kept) drop its candidates, masks and flows.

    The stamp comes first: a job killed while dropping finds the segment finished and its outputs
    in place; one killed before the stamp blends again from the candidates, which are still there.
    """
    seg_dir = wd.segments / seg.name
    write_json(seg_dir / "stamp.json", {"synth": fp.synth, "blend": fp.blend})
    if keep_intermediates:
        return
    for name in INTERMEDIATES:  # rerender's own sub-folders of a managed folder (see rerender.workdir)
        shutil.rmtree(seg_dir / name, ignore_errors=True)
    wd.flow_cache.drop(seg.flow_pairs())


def remove_other_segments(wd: WorkDir, segments: list[Segment]) -> None:
    """Delete the folders of segments that the current key frames no longer form."""
    live = {s.name for s in segments}
    if wd.segments.is_dir():
        for d in wd.segments.iterdir():
            if d.is_dir() and d.name not in live:
                shutil.rmtree(d, ignore_errors=True)


# ------------------------------------------------------------------------------------------------
# all segments, in threads of this process


@dataclass
class PropagateSummary:
    synthesized: int = 0                 # pass steps computed
    blended: int = 0                     # frames blended
    recomputed: list[str] = field(default_factory=list)  # segments (re)computed
    timings: dict[str, float] = field(default_factory=dict)
    retried: int = 0                     # tasks restarted after a lost worker (cluster runs)


@contextlib.contextmanager
def opencv_threads(n: int):
    """OpenCV's own thread pool at ``n`` threads for the block (then as it was). The passes already
    keep every core busy, one pass per core: OpenCV splitting each flow, remap or blur over the
    same cores on top of that only adds hand-overs (measured: ~0.3 s CPU of a 6 s job on 2 cores)."""
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(max(1, int(n)))
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def propagate_segments(wd: WorkDir, segments: list[Segment], fingerprints: dict[str, Fingerprints],
                       cfg: PropagationConfig, progress: Progress, on_step: StepHook | None = None,
                       timer: Timer | None = None, keep_intermediates: bool = False) -> PropagateSummary:
    """Bring every segment's passes and blend up to date with ``fingerprints``; reuse what matches.

    Passes run in a thread pool (``cfg.parallelism``); a segment is blended and finished by this
    thread as soon as both its passes are stored, so that at most a few segments' intermediates
    exist at a time however long the shot.
    """
    summary = PropagateSummary()
    wd.segments.mkdir(parents=True, exist_ok=True)
    todo = [seg for seg in segments if prepare_segment(wd, seg, fingerprints[seg.name])]
    summary.recomputed = [seg.name for seg in todo]
    remove_other_segments(wd, segments)
    n_passes = sum(len(s.passes()) for s in todo)
    h, w = wd.frame(segments[0].frames[0]).shape[:2] if segments else (0, 0)
    workers, threads = cfg.parallelism(n_passes, h * w)
    with progress.stage("propagate", sum(s.steps() for s in segments)) as pbar, \
            progress.stage("blend", sum(len(s.frames) for s in segments), timed=True) as bbar, \
            opencv_threads(threads), \
            cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rerender-pass") as pool:
        for seg in segments:  # finished in an earlier run: done, but not work of this run
            if seg.name not in summary.recomputed:
                pbar.skip(seg.steps())
                bbar.skip(len(seg.frames))
        ctx = RunContext(wd, cfg, threads, pbar, bbar, on_step, timer or Timer(), keep_masks=keep_intermediates,
                         candidates=Candidates(compact=keep_intermediates))
        pending: dict[cf.Future, Segment] = {}
        remaining = {s.name: len(s.passes()) for s in todo}
        for seg in todo:
            for direction, key_index, order in seg.passes():
                pending[pool.submit(run_pass, ctx, wd.segments / seg.name, direction, key_index, order)] = seg
        try:
            for fut in cf.as_completed(list(pending)):
                fut.result()
                seg = pending[fut]
                remaining[seg.name] -= 1
                if remaining[seg.name] == 0:
                    with bbar.working():  # the blend's rate counts its own work, not the wait for passes
                        summary.blended += blend_segment(ctx, seg, wd.segments / seg.name)
                    finish_segment(wd, seg, fingerprints[seg.name], keep_intermediates)
        except BaseException:
            ctx.cancelled.set()
            for f in pending:
                f.cancel()
            raise
        finally:
            summary.synthesized = ctx.steps
            summary.timings = dict(ctx.timer.totals)
    return summary
