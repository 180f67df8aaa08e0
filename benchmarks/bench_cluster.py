"""Propagation on a Dask cluster: speed-up from 1 to 2 worker processes, and the scheduler's cost.

The clip: 60 frames of 512 x 512 (the demo's generated camera move, ``rerender.demo.demo_clip``), key
frames every 10 frames and the last one (0, 10, ..., 50, 59: six segments, twelve passes), stylised
by the demo's filter; reference settings (docs/method.md). Each job runs on a ``LocalCluster`` of N
worker processes with one thread each (a task's synthesis uses one native thread, the cluster
default), from an empty work directory, end to end (decode, key frames, propagation, output);
best of ``--repeat``; the output frames of every run are compared byte for byte. For reference, the same job on one machine without Dask (threads).

The scheduler's cost: wall time per task of a batch of empty tasks (submitted together, results
gathered), and the same clip with a key frame every 2 frames (one-frame segments: the shortest
tasks a job makes) on 1 and 2 workers, beside the thread engine.

    python benchmarks/bench_cluster.py [--repeat 3] [--workers 1 2] [--frames 60] [--size 512]

Target (issue 12): >= 1.7x from 1 to 2 workers on this 2-core machine. Other jobs on the machine
slow everything down unevenly: the load average is printed with each figure.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rerender import media
from rerender.demo import demo_clip, stylise
from rerender.passes import PropagationConfig
from rerender.pipeline import propagate


def _noop(i: int) -> int:
    return i


def _warm() -> None:
    """Import what the tasks use, so that the first timed job does not pay for it."""
    import rerender.cluster  # noqa: F401
    import rerender.passes  # noqa: F401


OUTPUTS: dict[str, set[str]] = {}  # key layout -> digests of every job's output frames


def _job(root: Path, keys: Path, cfg: PropagationConfig, client) -> float:
    shutil.rmtree(root / "work", ignore_errors=True)
    shutil.rmtree(root / "out", ignore_errors=True)
    t0 = time.perf_counter()
    propagate(root / "input", keys, root / "out", work_dir=root / "work", config=cfg, client=client)
    seconds = time.perf_counter() - t0
    h = hashlib.sha256()
    for f in sorted((root / "out").glob("*.png")):
        h.update(f.read_bytes())
    OUTPUTS.setdefault(keys.name, set()).add(h.hexdigest())
    return seconds


def _load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def main(argv=None) -> int:
    import distributed

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--key-every", type=int, default=10)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-short", action="store_true", help="skip the one-frame-segment runs")
    args = ap.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="bench_cluster_"))
    try:
        clip = demo_clip(args.frames, (args.size, args.size))
        for i, f in enumerate(clip):
            media.write_image(root / "input" / f"{i:04d}.png", f)
        layouts = {"keys": sorted(set(range(0, args.frames, args.key_every)) | {args.frames - 1})}
        if not args.no_short:
            layouts["short"] = list(range(0, args.frames, 2)) + ([args.frames - 1] if args.frames % 2 == 0 else [])
        for name, keys in layouts.items():
            for k in keys:
                media.write_image(root / name / f"{k:04d}.png", stylise(clip[k]))
        cfg = PropagationConfig()
        print(f"clip {args.size}x{args.size}, {args.frames} frames, keys {layouts['keys']}, reference settings; "
              f"{os.cpu_count()} cores", flush=True)

        def best(label, fn):
            times = []
            for _ in range(args.repeat):
                times.append(fn())
                print(f"  {label}: {times[-1]:6.1f} s ({_load()})", flush=True)
            return min(times)

        local = best("one machine, threads", lambda: _job(root, root / "keys", cfg, None))
        results = {}
        for n in args.workers:
            with distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                          silence_logs=40) as cluster, distributed.Client(cluster) as client:
                client.run(_warm)
                results[n] = best(f"{n} worker process(es)", lambda: _job(root, root / "keys", cfg, client))
                if n == max(args.workers):
                    tasks = 200
                    t0 = time.perf_counter()
                    client.gather(client.map(_noop, range(tasks), pure=False))
                    per_task = (time.perf_counter() - t0) / tasks
                if not args.no_short:
                    results[("short", n)] = best(f"{n} worker(s), one-frame segments",
                                                 lambda: _job(root, root / "short", cfg, client))
        if not args.no_short:
            short_local = best("one machine, one-frame segments", lambda: _job(root, root / "short", cfg, None))
        print()
        print(f"one machine (threads, no Dask): {local:6.1f} s")
        for n in args.workers:
            print(f"{n} worker process(es):          {results[n]:6.1f} s   speed-up over 1 worker: "
                  f"{results[min(args.workers)] / results[n]:.2f}x")
        for layout, digests in OUTPUTS.items():
            print(f"output frames ({layout}): " + ("byte-identical in every run (threads and every cluster size)"
                                                   if len(digests) == 1 else f"DIFFER between runs ({len(digests)} versions)"))
        print(f"scheduler: {per_task * 1000:.1f} ms per empty task (200 submitted at once, {max(args.workers)} workers)")
        if not args.no_short:
            n_short = len(layouts["short"]) - 1
            print(f"one-frame segments ({n_short} segments, {3 * n_short} tasks): one machine {short_local:.1f} s, "
                  + ", ".join(f"{n} worker(s) {results[('short', n)]:.1f} s" for n in args.workers)
                  + f"; speed-up {results[('short', min(args.workers))] / results[('short', max(args.workers))]:.2f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
