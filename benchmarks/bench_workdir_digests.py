"""What recording and checking the work directory's digests costs, on the demo (`rerender demo`).

Every entry of the work directory (decoded frames, flows, candidates, key copies, output frames)
gets its size and BLAKE2b digest recorded when written and checked when read back
(rerender.files.record_entry / read_entry). This runs the demo, then the demo again (a resumed run:
nothing left to do but the checks and writing the outputs), timing every digest computed on the way
(summed over threads), and prints both runs' wall times with the digests' share:

    python3 benchmarks/bench_workdir_digests.py [--keep DIR]

For the time without digests, time `rerender demo -o DIR` twice on a build from before them.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

import rerender.files as files
from rerender.demo import run_demo


class DigestTimer:
    """Wraps rerender.files' digest functions to sum the seconds and bytes they take."""

    def __init__(self):
        self.seconds, self.bytes, self.calls = 0.0, 0, 0
        self._lock = threading.Lock()
        for name in ("bytes_digest", "content_digest"):
            setattr(files, name, self._timed(getattr(files, name)))

    def _timed(self, fn):
        def timed(arg):
            t0 = time.perf_counter()
            out = fn(arg)
            dt = time.perf_counter() - t0
            with self._lock:
                self.seconds += dt
                self.calls += 1
                self.bytes += int(out.split(":")[0]) if out else 0
            return out
        return timed

    def take(self) -> tuple[float, int, int]:
        with self._lock:
            out = (self.seconds, self.bytes, self.calls)
            self.seconds, self.bytes, self.calls = 0.0, 0, 0
        return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", metavar="DIR", help="run the demo in DIR and keep it")
    args = ap.parse_args(argv)
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="rerender-digests-"))
    timer = DigestTimer()
    try:
        for run in ("demo", "resumed demo"):
            files._checked.clear()  # as in a new process: every entry read is checked once
            t0 = time.perf_counter()
            run_demo(root)
            wall = time.perf_counter() - t0
            seconds, nbytes, calls = timer.take()
            print(f"{run}: {wall:.1f} s wall; digests: {calls} of {nbytes / 1e6:.1f} MB in {seconds * 1000:.0f} ms "
                  f"({100 * seconds / wall:.2f}% of the wall time, summed over threads)")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
