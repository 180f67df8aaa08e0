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

import json
import sys
import threading
import time
from typing import IO, Literal

Mode = Literal["human", "json", "quiet"]


class Stage:
    """A counter for one stage: ``update(k)`` adds ``k`` items finished by this run, ``skip(k)`` adds
    ``k`` items found finished already (a resumed job), which count as done but not towards the
    rate. The estimated time left (:meth:`eta`) is the remaining items at the average rate of this
    run's items since the stage started: over thousands of frames a steady figure, unlike a
    short-window rate, and not fooled by the burst of reused work at the start of a resumed job.
    """

    def __init__(self, reporter: "Progress", name: str, total: int, clock=time.monotonic):
        self._reporter = reporter
        self._clock = clock
        self.name = name
        self.total = int(total)
        self.done = 0
        self.skipped = 0
        self.started = clock()
        self._bar = None
        if reporter.mode == "human":
            from tqdm import tqdm

            # smoothing=0: tqdm's rate is (n - initial) / elapsed, the same estimate as eta()
            self._bar = tqdm(total=self.total, desc=name, unit="frame", file=reporter.stream_err,
                             leave=True, dynamic_ncols=True, smoothing=0)
        elif reporter.mode == "json":
            reporter._emit({"event": "stage", "stage": name, "total": self.total})

    def eta(self) -> float | None:
        """Seconds left at this run's average rate; None before the first item of this run."""
        worked = self.done - self.skipped
        if self.done >= self.total:
            return 0.0
        if worked <= 0:
            return None
        return (self.total - self.done) * (self._clock() - self.started) / worked

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

    def stage(self, name: str, total: int) -> Stage:
        """Start a stage of ``total`` items (use as a context manager)."""
        return Stage(self, name, total)

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
