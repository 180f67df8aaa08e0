"""CPU time of the propagation's flow stage on real clips, this code against references.

The flow stage is what the passes and the blend ask of the work directory's flow cache: for every
consecutive pair of a clip (those of ``bench_quality.py``: 21 frames at a short side of 256 px),
flow_{i->i+1}, flow_{i+1->i} and both occlusion masks, computed from the decoded frames in
``WORK/frames`` and stored (``WorkDir.flow`` / ``WorkDir.flow_cache.occluded``), then each read
back as the blend reads them. Every run is a fresh process from an empty work directory; its CPU
time (user + sys, all threads: OpenCV's DIS spreads over its own thread pool, which the job's
per-thread stage timer does not see) is compared. Implementations alternate run by run and the
median of ``--repeat`` runs is printed, with the ratio to each reference, the bytes the flows
take on disk, and whether the flows are bit-identical to the first reference's.

References: ``--reference NAME=DIR`` (DIR holds a ``rerender`` package with its compiled
``_native``, as ``bench_speed.py --build`` makes them).

    python benchmarks/bench_flow.py --reference main=DIR [--cases 0 1 2 3 4] [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

REPO = Path(__file__).resolve().parents[1]

# the child: times the flow stage of one clip in a fresh work directory and prints a JSON line
_CHILD = r"""
import hashlib, json, os, sys, time
if os.environ.get("BENCH_FLOW_REFERENCE"):  # this checkout's editable install (a meta-path finder) would
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__]  # shadow it
from pathlib import Path
import numpy as np
from rerender.workdir import WorkDir
import rerender.flow, rerender.warping  # imported before the clock starts: the stage, not the imports
frames_dir, root = Path(sys.argv[1]), Path(sys.argv[2])
n = len(list(frames_dir.glob("*.png")))
wd = WorkDir(root)
wd.claim()
wd.frames.mkdir(parents=True, exist_ok=True)
for p in sorted(frames_dir.glob("*.png")):
    (wd.frames / p.name).write_bytes(p.read_bytes())
c0 = time.process_time()
for i in range(n - 1):  # a pass step asks for the pair's flows and its mask; the blend asks again
    wd.flow(i + 1, i), wd.flow(i, i + 1)
    wd.flow_cache.occluded(i + 1, i), wd.flow_cache.occluded(i, i + 1)
for i in range(n - 1):
    wd.flow(i + 1, i), wd.flow(i, i + 1), wd.flow_cache.occluded(i + 1, i)
cpu = time.process_time() - c0
h = hashlib.sha256()
for i in range(n - 1):
    h.update(np.ascontiguousarray(wd.flow(i, i + 1)).tobytes())
    h.update(np.ascontiguousarray(wd.flow(i + 1, i)).tobytes())
size = sum(p.stat().st_size for p in (wd.flow_dir).rglob("*") if p.is_file())
import rerender
print(json.dumps({"cpu": cpu, "digest": h.hexdigest()[:16], "bytes": size, "from": rerender.__file__}))
"""


def run_child(site: Path | None, frames_dir: Path, work: Path) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    env = dict(os.environ)
    if site is not None:
        env["PYTHONPATH"] = str(site) + os.pathsep + env.get("PYTHONPATH", "")
        env["BENCH_FLOW_REFERENCE"] = "1"
    out = subprocess.run([sys.executable, "-c", _CHILD, str(frames_dir), str(work)], env=env,
                         capture_output=True, text=True, cwd=str(site or REPO))
    if out.returncode:
        raise SystemExit(f"bench_flow: the child failed ({site or 'this code'}):\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    import bench_quality as BQ
    from rerender import media

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="*", type=int, default=[0, 1, 2, 3, 4], help="bench_quality case numbers")
    ap.add_argument("--repeat", type=int, default=3, help="runs per implementation and case (median)")
    ap.add_argument("--reference", action="append", default=[], metavar="NAME=DIR",
                    help="another build: DIR holds its rerender package (put first on PYTHONPATH)")
    ap.add_argument("--cache", default=str(BQ.DEFAULT_CACHE), help="clips cache")
    args = ap.parse_args(argv)
    impls: list[tuple[str, Path | None]] = [("this", None)]
    for item in args.reference:
        name, _, folder = item.partition("=")
        if not (name and Path(folder, "rerender").is_dir()):
            raise SystemExit(f"bench_flow: --reference {item!r}: expected NAME=DIR with DIR/rerender")
        impls.append((name, Path(folder)))
    print(f"flow stage CPU s (all threads), median of {args.repeat}; load {os.getloadavg()[0]:.1f}")
    print("| clip | " + " | ".join(n for n, _ in impls) + " | ratio | flow bytes (this / first ref) | same flows |")
    print("|---|" + "---|" * (len(impls) + 3))
    with tempfile.TemporaryDirectory(prefix="bench_flow_") as tmp:
        for n in args.cases:
            case = BQ.CASES[n]
            frames_dir = Path(tmp) / f"frames{n}"
            for i, f in enumerate(BQ.load_case(case, Path(args.cache).expanduser())):
                media.write_image(frames_dir / f"{i:04d}.png", f)
            runs: dict[str, list[dict]] = {name: [] for name, _ in impls}
            for _ in range(args.repeat):
                for name, site in impls:
                    runs[name].append(run_child(site, frames_dir, Path(tmp) / "work"))
            med = {name: statistics.median(r["cpu"] for r in rs) for name, rs in runs.items()}
            ref = impls[1][0] if len(impls) > 1 else None
            ratio = f"{med['this'] / med[ref]:.2f}" if ref else "-"
            size = (f"{runs['this'][0]['bytes'] / 1e3:.0f} kB / {runs[ref][0]['bytes'] / 1e3:.0f} kB" if ref
                    else f"{runs['this'][0]['bytes'] / 1e3:.0f} kB")
            same = ("yes" if runs["this"][0]["digest"] == runs[ref][0]["digest"] else "NO") if ref else "-"
            print(f"| {case.name} | " + " | ".join(f"{med[name]:.2f}" for name, _ in impls)
                  + f" | {ratio} | {size} | {same} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
