"""Seconds per non-key frame of the propagation job (flow, guides, two syntheses, blending), CPU.

A 31-frame 512 x 512 clip (the demo's generated camera move with a parallax layer), key frames every
10 frames stylised by the demo's OpenCV filter, reference settings (docs/method.md) unless overridden:

    python3 benchmarks/bench_propagate.py [--size 512] [--frames 31] [--set warm_start=none ...]

Prints wall-clock seconds per non-key frame and the per-stage breakdown. Stage figures are summed
over worker threads (so with 2 workers they add up to about twice the wall time); "process CPU" is
time.process_time over the whole job. Target on a 2-core CPU: <= 6 s wall per non-key frame.
"""
from __future__ import annotations

import argparse
import ast
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rerender import media
from rerender.demo import demo_clip, stylise
from rerender.pipeline import propagate
from rerender.passes import PropagationConfig


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512, help="clip is SIZE x SIZE")
    ap.add_argument("--frames", type=int, default=31)
    ap.add_argument("--key-every", type=int, default=10)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a PropagationConfig option, e.g. warm_start='none' or workers=1")
    ap.add_argument("--keep", metavar="DIR", help="keep the work files in DIR")
    args = ap.parse_args(argv)
    overrides = {}
    for item in args.set:
        k, _, v = item.partition("=")
        try:
            overrides[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            overrides[k] = v
    cfg = PropagationConfig(**overrides)
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_propagate_"))
    try:
        clip = demo_clip(args.frames, (args.size, args.size))
        keys = list(range(0, args.frames, args.key_every))
        for i, f in enumerate(clip):
            media.write_image(root / "input" / f"{i:04d}.png", f)
        for k in keys:
            media.write_image(root / "keys" / f"{k:04d}.png", stylise(clip[k]))
        shutil.rmtree(root / "work", ignore_errors=True)
        t0, c0 = time.perf_counter(), time.process_time()
        res = propagate(root / "input", root / "keys", root / "out", work_dir=root / "work", config=cfg)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        n = args.frames - len(keys)
        workers, threads = cfg.parallelism(2 * len(keys))
        print(f"clip {args.size}x{args.size}, {args.frames} frames, keys {keys}, {n} non-key frames, "
              f"{res.synthesized} syntheses, {workers} workers x {threads} thread(s), options {overrides or 'reference'}")
        print(f"wall      {wall / n:7.2f} s per non-key frame   ({wall:.1f} s total)")
        print(f"proc CPU  {cpu / n:7.2f} s per non-key frame")
        for stage in ("flow", "guides", "synthesis", "blending"):
            t = res.timings.get(stage, 0.0)
            print(f"  {stage:<9} {t / n:6.2f} s per non-key frame (CPU, thread-summed)")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
