"""One progress reporter for every long stage: tqdm bars on stderr, or JSON lines on stdout.

The JSON protocol (one object per line, flushed at once) is what the Blender add-on and scripts read:
  {"event": "stage", "stage": NAME, "total": N}
  {"event": "progress", "stage": NAME, "done": K, "total": N, "eta": SECONDS_LEFT_OR_NULL}
  {"event": "log", "message": TEXT}
  {"event": "done", "output": PATH[, "files": [FRAME FILES in frame order]]}
  {"event": "error", "message": TEXT}
Reporters are thread-safe: segments are propagated in parallel threads that share one.
"""
from __future__ import annotations

import contextlib
import functools
import json
import sys
import threading
import time
from typing import IO, Iterator, Literal

Mode = Literal["human", "json", "quiet"]


class Stage:
    """A counter for one stage: ``update(k)`` adds ``k`` items finished by this run, ``skip(k)`` adds
    ``k`` items found finished already (a resumed job), which count as done but not towards the
    rate. The estimated time left (:meth:`eta`) is the remaining items at the average rate of this
    run's items since the stage started: over thousands of frames a steady figure, unlike a
    short-window rate, and not fooled by the burst of reused work at the start of a resumed job.

    A ``timed`` stage runs in bursts while another stage works (the blend of a segment waits for its
    passes): its rate is measured over the time spent inside :meth:`working` blocks only, so that the
    estimate counts the work left, not the waiting.
    """

    def __init__(self, reporter: "Progress", name: str, total: int, clock=time.monotonic, timed: bool = False):
        self._reporter = reporter
        self._clock = clock
        self.name = name
        self.total = int(total)
        self.done = 0
        self.skipped = 0
        self.started = clock()
        self.timed = timed
        self.busy = 0.0  # seconds inside working() blocks (timed stages)
        self._busy_since: float | None = None
        self._bar = None
        if reporter.mode == "human":
            from tqdm import tqdm

            # smoothing=0: tqdm's rate is (n - initial) / elapsed, the same estimate as eta(); a timed
            # stage gives tqdm its own rate (tqdm's would count the waiting)
            self._bar = (_timed_bar() if timed else tqdm)(
                total=self.total, desc=name, unit="frame", file=reporter.stream_err, leave=True,
                dynamic_ncols=True, smoothing=0)
            self._bar.stage = self
        elif reporter.mode == "json":
            reporter._emit({"event": "stage", "stage": name, "total": self.total})

    def _spent(self) -> float:
        """Seconds this run has spent on the stage: since it started, or working (timed)."""
        if not self.timed:
            return self._clock() - self.started
        return self.busy + (self._clock() - self._busy_since if self._busy_since is not None else 0.0)

    def eta(self) -> float | None:
        """Seconds left at this run's average rate; None before the first item of this run."""
        worked = self.done - self.skipped
        if self.done >= self.total:
            return 0.0
        if worked <= 0:
            return None
        return (self.total - self.done) * self._spent() / worked

    @contextlib.contextmanager
    def working(self) -> Iterator[None]:
        """A block of this stage's own work (timed stages count only these towards the rate)."""
        with self._reporter._lock:
            self._busy_since = self._clock()
        try:
            yield
        finally:
            with self._reporter._lock:
                self.busy += self._clock() - self._busy_since
                self._busy_since = None

    def rate(self) -> float | None:
        """Items per second of this run's work (None before the first)."""
        worked, spent = self.done - self.skipped, self._spent()
        return worked / spent if worked > 0 and spent > 0 else None

    def update(self, k: int = 1) -> None:
        self._advance(k, skipped=False)

    def skip(self, k: int) -> None:
        if k:
            self._advance(k, skipped=True)

    def _advance(self, k: int, skipped: bool) -> None:
        with self._reporter._lock:
            self.done += k
            if skipped:
                self.skipped += k
            if self._bar is not None:
                if skipped:
                    self._bar.initial += k
                self._bar.update(k)
            elif self._reporter.mode == "json":
                eta = self.eta()
                self._reporter._emit_locked({"event": "progress", "stage": self.name, "done": self.done,
                                             "total": self.total, "eta": None if eta is None else round(eta, 1)})

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Stage":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@functools.cache
def _timed_bar():
    """tqdm showing a timed Stage's own rate (and so its estimate of the time left)."""
    from tqdm import tqdm

    class TimedBar(tqdm):
        @property
        def format_dict(self):
            d = super().format_dict
            stage = getattr(self, "stage", None)  # set once the bar exists
            d["rate"] = stage.rate() if stage is not None else None
            return d

    return TimedBar


class Progress:
    """Progress reporter. ``mode``: "human" (tqdm on stderr), "json" (JSON lines on stdout), "quiet"."""

    def __init__(self, mode: Mode = "human", stream_out: IO[str] | None = None,
                 stream_err: IO[str] | None = None):
        if mode not in ("human", "json", "quiet"):
            raise ValueError(f"progress mode: {mode!r} is not one of 'human', 'json', 'quiet'")
        self.mode = mode
        self.stream_out = stream_out or sys.stdout
        self.stream_err = stream_err or sys.stderr
        self._lock = threading.RLock()

    def _emit_locked(self, obj: dict) -> None:
        self.stream_out.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self.stream_out.flush()

    def _emit(self, obj: dict) -> None:
        with self._lock:
            self._emit_locked(obj)

    def stage(self, name: str, total: int, timed: bool = False) -> Stage:
        """Start a stage of ``total`` items (use as a context manager); ``timed``: see :class:`Stage`."""
        return Stage(self, name, total, timed=timed)

    def event(self, name: str, **fields) -> None:
        """A machine-readable result (JSON mode only), e.g. ``event("metrics", mean=...)``."""
        if self.mode == "json":
            self._emit({"event": name, **fields})

    def log(self, message: str) -> None:
        if self.mode == "json":
            self._emit({"event": "log", "message": message})
        elif self.mode == "human":
            with self._lock:
                print(message, file=self.stream_err, flush=True)

    def done(self, output: str, files: list[str] | None = None) -> None:
        """The job's result; ``files``: the frame files written (a sequence output), in frame order."""
        if self.mode == "json":
            self._emit({"event": "done", "output": str(output), **({"files": list(map(str, files))} if files else {})})
        elif self.mode == "human":
            with self._lock:
                print(f"wrote {output}", file=self.stream_err, flush=True)

    def error(self, message: str) -> None:
        if self.mode == "json":
            self._emit({"event": "error", "message": message})
        else:
            with self._lock:
                print(f"rerender: error: {message}", file=self.stream_err, flush=True)


QUIET = Progress("quiet")
