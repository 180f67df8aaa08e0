"""Propagation on a Dask distributed cluster: each segment's passes and blend run as tasks.

``pip install "rerender[cluster]"``, start a scheduler and workers (``dask scheduler``,
``dask worker tcp://HOST:8786 --nworkers N --nthreads 1``), then ``rerender propagate ... --scheduler
tcp://HOST:8786`` -- or pass a ``distributed.Client`` to :func:`rerender.pipeline.propagate` /
:func:`rerender.pipeline.translate`. This module is imported only then: without a scheduler the
job runs in threads of one process and never imports Dask.

Division of labour:

- The client (the ``rerender`` process, on the machine with the GPU for ``rerender run``) holds
  the work directory's lock, decodes the frames, renders or copies the key frames, prepares each
  segment (:func:`rerender.segments.prepare_segment`), submits its tasks as soon as both its keys
  exist, and writes the output at the end.
- A task (on any worker) runs one pass of a segment (:func:`rerender.segments.run_pass`) or, once
  both passes are stored, blends and finishes it. Workers never take the lock; they read and write
  only inside the shared work directory, through atomic writes, and what they write is a function
  of the segment's inputs only: the same bytes on any machine, so a task can be retried anywhere.

Faults: a worker that dies mid-task loses at most the step it was computing; the scheduler runs the
task again elsewhere and :func:`~rerender.segments.run_pass` resumes from the stored steps
(after ``distributed.scheduler.allowed-failures`` deaths of the same task the job stops with a
:class:`ClusterError`). An exception inside a task (an unreadable key frame, a work directory that a
worker cannot see) is not retried: the job stops at once with that error, raised once. Stopping
(an error, Ctrl-C, ``on_step`` raising) sets a cluster-wide event that every task checks at each
step, and the client waits for the running tasks to end before it releases the lock.

Progress: tasks publish their counts as Dask events (``Worker.log_event``); the client folds them
into its progress bars (a retried pass is not counted twice) and relays ``on_step``.
"""
from __future__ import annotations

import dataclasses
import queue
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from .errors import ClusterError, JobCancelled
from .passes import PropagationConfig
from .progress import Progress
from .segments import (Fingerprints, PropagateSummary, RunContext, Segment, StepHook, Timer, blend_segment,
                       finish_segment, prepare_segment, run_pass)
from .workdir import MARKER, WorkDir

try:
    import distributed
except ImportError as e:  # pragma: no cover - exercised by the CLI's message test
    raise ImportError('running on a Dask cluster needs Dask distributed: pip install "rerender[cluster]"') from e

__all__ = ["connect", "check_client", "ClusterRun"]

STOP_WAIT_S = 900        # how long a stopping job waits for running tasks to reach their next step
CONNECT_TIMEOUT_S = 20.0


def connect(address: str) -> "distributed.Client":
    """A client of the Dask scheduler at ``address`` (``tcp://HOST:8786``); :class:`ClusterError`
    when it cannot be reached."""
    try:
        return distributed.Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as e:
        raise ClusterError(f"--scheduler {address}: cannot reach a Dask scheduler there ({e}); start one with "
                           "`dask scheduler` and check the address and port") from None


def check_client(client) -> None:
    if not isinstance(client, distributed.Client):
        raise TypeError(f"client: expected a distributed.Client, got {type(client).__name__}")


# ------------------------------------------------------------------------------------------------
# worker side


@dataclasses.dataclass(frozen=True)
class _Spec:
    """What every task of one run needs to find its way (small: it travels with each task)."""

    root: str                 # the work directory, absolute, as every worker must see it
    flow_method: str
    cfg: PropagationConfig
    threads: int              # native threads per synthesis
    topic: str                # Dask event topic of this run
    cancel: str               # name of this run's stop event
    keep_intermediates: bool
    relay_steps: bool         # the client has an on_step hook
    deep: bool = False        # the work directory holds float32 frames (a 16-bit or float plate)
    matted: bool = False      # the job has a matte (WORK/mattes)


class _EventBar:
    """A task's progress counter: publishes its cumulative counts, so that the client can fold in a
    retried task without counting its work twice."""

    def __init__(self, spec: _Spec, kind: str, key: str):
        self.spec, self.kind, self.key = spec, kind, key
        self.done = 0
        self.skipped = 0

    def update(self, k: int = 1) -> None:
        self.done += k
        self._send()

    def skip(self, k: int) -> None:
        self.done += k
        self.skipped += k
        self._send()

    def _send(self) -> None:
        _publish(self.spec, {"kind": self.kind, "key": self.key, "done": self.done, "skipped": self.skipped})


def _publish(spec: _Spec, msg: dict) -> None:
    distributed.get_worker().log_event(spec.topic, msg)


class _StopFlag:
    """The run's cluster-wide stop event, read the way RunContext.check reads a threading.Event."""

    def __init__(self, name: str):
        self._event = distributed.Event(name)

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()


def _context(spec: _Spec, task: str, propagate_key: str, blend_key: str) -> tuple[RunContext, WorkDir]:
    wd = WorkDir(spec.root, spec.flow_method, deep=spec.deep, matted=spec.matted)
    if not (wd.root / MARKER).is_file():
        raise ClusterError(f"worker {socket.gethostname()} ({distributed.get_worker().address}) cannot see the work "
                           f"directory {wd.root}: every worker must reach it at this same path (a shared file system)")
    _publish(spec, {"kind": "start", "key": task})

    def relay(stage: str, index: int) -> None:
        _publish(spec, {"kind": "step", "stage": stage, "index": index})

    ctx = RunContext(wd, spec.cfg, spec.threads, _EventBar(spec, "pass", propagate_key),
                     _EventBar(spec, "blend", blend_key), relay if spec.relay_steps else None, Timer(),
                     _StopFlag(spec.cancel))
    ctx.check()
    return ctx, wd


STOPPED = {"stopped": True}  # what a task stopped by its run's stop event returns (not an error)


def _pass_task(spec: _Spec, seg_name: str, direction: str, key_index: int, order: list[int]) -> dict[str, Any]:
    task = f"{seg_name}/{direction}"
    try:
        ctx, wd = _context(spec, task, task, seg_name)
        run_pass(ctx, wd.segments / seg_name, direction, key_index, order)
    except JobCancelled:
        return STOPPED
    return {"steps": ctx.steps, "timings": dict(ctx.timer.totals)}


def _blend_task(spec: _Spec, seg: Segment, fp: Fingerprints, *passes: dict[str, Any]) -> dict[str, Any]:
    if any(p.get("stopped") for p in passes):
        return STOPPED
    try:
        ctx, wd = _context(spec, f"{seg.name}/blend", f"{seg.name}/blend", seg.name)
    except JobCancelled:
        return STOPPED
    frames = blend_segment(ctx, seg, wd.segments / seg.name)
    finish_segment(wd, seg, fp, spec.keep_intermediates)
    return {"blended": frames, "timings": dict(ctx.timer.totals)}


# ------------------------------------------------------------------------------------------------
# client side


class ClusterRun:
    """One propagation run's tasks on a cluster. Create it with every segment of the job (for the
    progress totals), :meth:`submit` segments as their keys become ready, then :meth:`wait`.

    ``client``: a connected ``distributed.Client``. The caller holds the work directory's lock for
    the whole run, and must call :meth:`wait` (or :meth:`stop`) before releasing it.
    """

    def __init__(self, client: "distributed.Client", wd: WorkDir, segments: list[Segment], cfg: PropagationConfig,
                 progress: Progress, on_step: StepHook | None = None, timer: Timer | None = None,
                 keep_intermediates: bool = False):
        check_client(client)
        self.client, self.wd, self.on_step = client, wd, on_step
        self.timer = timer or Timer()
        self.run_id = uuid.uuid4().hex[:12]
        self.spec = _Spec(str(Path(wd.root).resolve()), wd.flow_method, cfg, cfg.threads or 1,
                          f"rerender-{self.run_id}", f"rerender-{self.run_id}-stop", keep_intermediates,
                          on_step is not None, wd.deep, wd.matted)
        self.summary = PropagateSummary()
        self._futures: list = []
        self._labels: dict[str, str] = {}        # task key -> "segment/pass" for messages
        self._lock = threading.Lock()
        self._error: BaseException | None = None  # first failure: a task's, or on_step's
        self._stopped: BaseException | None = None  # a task stopped by the stop event
        self._closed = False
        self._pass_done: dict[str, int] = {}
        self._pass_skipped: dict[str, int] = {}
        self._blend_done: dict[str, int] = {}
        self._starts: dict[str, int] = {}
        self._stop = distributed.Event(self.spec.cancel, client=client)
        # on_step runs in a thread of its own: events arrive in the client's event loop, where a
        # hook could not call the client (or wait) without blocking it
        self._steps: queue.Queue = queue.Queue()
        self._relay = None
        if on_step is not None:
            self._relay = threading.Thread(target=self._relay_steps, name="rerender-on-step", daemon=True)
            self._relay.start()
        self._pbar = progress.stage("propagate", sum(s.steps() for s in segments))
        self._bbar = progress.stage("blend", sum(len(s.frames) for s in segments))
        wd.segments.mkdir(parents=True, exist_ok=True)
        client.subscribe_topic(self.spec.topic, self._on_event)

    # -------------------------------------------------------------------------------- submitting

    def submit(self, seg: Segment, fp: Fingerprints) -> bool:
        """Prepare ``seg`` (both its keys must exist) and submit its tasks; False when it was
        finished already. Raises the first failure of an earlier task at once."""
        self._raise_if_failed()
        if not prepare_segment(self.wd, seg, fp):
            self._pbar.skip(seg.steps())
            self._bbar.skip(len(seg.frames))
            return False
        self.summary.recomputed.append(seg.name)
        passes = []
        for direction, key_index, order in seg.passes():
            key = f"rerender-{seg.name}-{direction}-{self.run_id}"
            passes.append(self.client.submit(_pass_task, self.spec, seg.name, direction, key_index, order,
                                             key=key, pure=False))
            self._labels[key] = f"{seg.name} ({direction} pass)"
        key = f"rerender-{seg.name}-blend-{self.run_id}"
        # blends first when a worker has the choice: a blended segment's intermediates can go
        blend = self.client.submit(_blend_task, self.spec, seg, fp, *passes, key=key, pure=False, priority=1)
        self._labels[key] = f"{seg.name} (blend)"
        for f in (*passes, blend):
            f.add_done_callback(self._on_done)
        self._futures += [*passes, blend]
        return True

    # -------------------------------------------------------------------------------- waiting

    def wait(self) -> PropagateSummary:
        """Wait for every submitted task; raise the first failure (after stopping the others)."""
        try:
            # the client's own loop: it need not be the default client
            for fut in distributed.as_completed(list(self._futures), loop=self.client.loop):
                self._raise_if_failed()
                self._collect(fut)
            self._raise_if_failed()
            if self._stopped is not None:  # stopped from outside this run (its stop event was set)
                raise self._stopped
        except BaseException:
            self.stop()
            raise
        self._close()
        self._pbar.update(max(0, self._pbar.total - self._pbar.done))   # events lost with a dead worker
        self._bbar.update(max(0, self._bbar.total - self._bbar.done))
        self.summary.retried = sum(max(0, n - 1) for n in self._starts.values())
        self.summary.timings = dict(self.timer.totals)
        self._pbar.close()
        self._bbar.close()
        return self.summary

    def stop(self) -> None:
        """Stop every task of this run (each at its next step) and wait until none runs any more."""
        self._stop.set()
        deadline = time.monotonic() + STOP_WAIT_S
        try:
            for fut in self._futures:  # through each future's own client (distributed.wait needs a default one)
                try:
                    fut.result(timeout=max(0.0, deadline - time.monotonic()))
                except Exception:  # failed, stopped, or still running at the deadline: nothing more to do
                    pass
        finally:
            self._close()
            self._pbar.close()
            self._bbar.close()

    def _close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self.client.unsubscribe_topic(self.spec.topic)
        except Exception:  # the client may be closing already; nothing depends on it
            pass
        if self._relay is not None:
            self._steps.put(None)
            if self._relay is not threading.current_thread():
                self._relay.join()
        try:
            self._stop.clear()
        except Exception:
            pass

    def _collect(self, fut) -> None:
        try:
            res = fut.result()
        except BaseException as e:
            self._record(fut, e)
            self._raise_if_failed()
            return  # stopped because of a failure that is recorded already
        if res.get("stopped"):
            with self._lock:
                self._stopped = self._stopped or JobCancelled("the job was stopped")
            return
        for stage, seconds in res.get("timings", {}).items():
            self.timer.add(stage, seconds)
        self.summary.synthesized += res.get("steps", 0)
        self.summary.blended += res.get("blended", 0)

    def _on_done(self, fut) -> None:
        """Runs in the client's thread when a task ends: remember the first real failure."""
        if fut.status != "error":
            return
        try:
            exc = fut.exception()
        except Exception as e:  # the future was released meanwhile
            exc = e
        self._record(fut, exc)

    def _record(self, fut, exc: BaseException) -> None:
        if isinstance(exc, JobCancelled):  # a consequence of the failure that stopped the run, not its cause
            with self._lock:
                self._stopped = self._stopped or exc
            return
        if type(exc).__name__ == "KilledWorker":
            label = self._labels.get(fut.key, fut.key)
            exc = ClusterError(f"segment {label}: the workers running it died again and again "
                               f"({exc}); results so far are kept, rerun to resume")
        with self._lock:
            if self._error is None:
                self._error = exc

    def _raise_if_failed(self) -> None:
        with self._lock:
            err = self._error
        if err is not None:
            raise err

    # -------------------------------------------------------------------------------- events

    def _on_event(self, event) -> None:
        """Fold a task's event into the bars (runs in the client's event-loop thread)."""
        msg = event[1] if isinstance(event, tuple) else event
        if self._closed or not isinstance(msg, dict):
            return
        kind, key = msg.get("kind"), msg.get("key")
        if kind == "start":
            self._starts[key] = self._starts.get(key, 0) + 1
        elif kind == "pass":
            if key not in self._pass_skipped:  # resumed from an earlier run (a retry's resume is this run's work)
                self._pass_skipped[key] = msg["skipped"]
                self._pbar.skip(msg["skipped"])
                self._pass_done[key] = msg["skipped"]
            new = msg["done"] - self._pass_done[key]
            if new > 0:
                self._pass_done[key] = msg["done"]
                self._pbar.update(new)
        elif kind == "blend":
            new = msg["done"] - self._blend_done.get(key, 0)
            if new > 0:
                self._blend_done[key] = msg["done"]
                self._bbar.update(new)
        elif kind == "step" and self._relay is not None:
            self._steps.put((msg["stage"], msg["index"]))

    def _relay_steps(self) -> None:
        while (item := self._steps.get()) is not None:
            try:
                self.on_step(*item)
            except BaseException as e:  # the caller stops the job: tell every task
                with self._lock:
                    if self._error is None:
                        self._error = e
                self._stop.set()
                return
