"""CPU time of the whole ``rerender propagate`` job on real clips, this code against references.

Every run is a fresh process (``python -m rerender propagate INPUT --keys KEYS -o OUT --work-dir
WORK`` from an empty work directory); its CPU time (user + sys of the child, all threads) is what
the figures compare: the machine is shared, so wall times are noisy. Implementations alternate run
by run (this, ref1, ..., this, ref1, ...) so that a load change hits all of them alike; the
median of ``--repeat`` runs is printed with the ratio to each reference, plus the output's PSNR
against the ground truth (the filter on every frame) and whether the frames are byte-identical to
the first reference's.

The clips are those of ``bench_quality.py`` (real footage fetched by ``tests/_footage.py``, keys
every 10 frames stylised by a deterministic filter). ``--size`` scales the short side (256 as in
bench_quality; 512 or 1080 for the per-frame targets). ``--demo 512`` / ``--demo 1920x1080`` runs
bench_propagate's generated clip instead and prints issue 23's per-frame targets beside the figures
(512 x 512: <= 0.4 s wall per non-key frame; 1080p: >= 1 frame/s); ``--warp`` adds each output's
warp error (``rerender metrics``: flow-aligned consecutive frames, occlusions excluded).

References: ``--reference NAME=DIR`` runs another build of rerender: DIR holds the ``rerender``
package with its compiled ``_native`` (a wheel unpacked; see ``--build COMMIT``), put first on
PYTHONPATH. ``--build COMMIT`` builds that commit once into ``~/.cache/rerender-bench/ref/COMMIT``
(a temporary git worktree, ``pip wheel``, unpacked) and adds it as a reference named after the
commit; later runs reuse the build.

"outside the stages": the job's CPU less its four measured stages (synthesis, flow, guides, blending,
summed over threads: ``JobResult.timings``), i.e. start-up and imports, decoding, the work
directory's files and digests, writing the output, and native or OpenCV worker threads the stage
timers do not see.

Issue 23's targets are printed beside the figures: this code's CPU at most ``TARGET_RATIO`` (0.5x)
of every reference's (met / not met, per clip and over the clips; the issue's reference is the first
landing, 0157ef6), and with ``--demo 512`` at most ``TARGET_DEMO_WALL`` (0.4 s) of wall time per
non-key frame. ``--ebsynth PATH``: the public EbSynth CPU backend on the same job (both passes of
every segment, set up as Rerender A Video uses it: ``bench_quality.run_ebsynth``), its CPU seconds
printed beside; its passes are cached with their CPU time in ``CACHE/ebsynth`` (shared with
bench_quality), so only the first run pays for them.

    python benchmarks/bench_speed.py --build 0157ef6 --build d3e156e [--cases 0 4 3] [--repeat 3]
    python benchmarks/bench_speed.py --reference main=DIR --ebsynth PATH [--cases 0 4 3]
    python benchmarks/bench_speed.py --demo 512 --reference main=DIR  # per non-key frame at 512 x 512
    python benchmarks/bench_speed.py --profile [--cases 4]        # cProfile of this code's job
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import bench_quality as BQ  # noqa: E402  (cases, filters, clip loading)

from rerender import media  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REF_CACHE = BQ.DEFAULT_CACHE / "ref"
TARGET_RATIO = 0.5       # issue 23: whole-job CPU <= 0.5x the first landing's (0157ef6)
TARGET_DEMO_WALL = 0.4   # issue 23: wall seconds per non-key frame at 512 x 512
TARGET_1080P_RATE = 1.0  # issue 23: frames per second of wall time at 1080p (keys every 10 frames)


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def ratio_text(cpu: float, ref_cpu: float, ref: str) -> str:
    """This code's CPU against a reference's, with the issue's target ratio."""
    r = cpu / ref_cpu
    return f"x{r:.2f} of {ref} (target <= {TARGET_RATIO:.2f}x: {verdict(r <= TARGET_RATIO)})"


def ebsynth_cpu(binary: Path, inp: Path, truth: list[np.ndarray], key_set: set[int], cache: Path):
    """The public EbSynth CPU backend on the job's input and keys (bench_quality's set-up); returns
    (CPU seconds of its processes or None if a cached pass lacks them, wall seconds, cached fraction,
    PSNR against the truth)."""
    frames = [media.read_image(inp / f"{i:04d}.png") for i in range(len(truth))]
    keys_style = {k: truth[k] for k in sorted(key_set)}
    outs, wall, cached, cpu = BQ.run_ebsynth(binary, frames, keys_style, BQ.input_flows(frames), cache)
    non_key = [i for i in range(len(truth)) if i not in key_set]
    mse = np.mean([((outs[i].astype(np.float64) - truth[i]) ** 2).mean() for i in non_key])
    return cpu, wall, cached, float(10 * np.log10(255.0 ** 2 / mse))


def build_reference(commit: str) -> Path:
    """``commit`` built once into ``REF_CACHE/<full hash>`` (returns the folder to put on PYTHONPATH)."""
    full = subprocess.run(["git", "-C", str(REPO), "rev-parse", commit], capture_output=True, text=True,
                          check=True).stdout.strip()
    site = REF_CACHE / full
    if (site / "rerender").is_dir():
        return site
    with tempfile.TemporaryDirectory(prefix="rr_ref_") as tmp:
        tree, wheels = Path(tmp) / "tree", Path(tmp) / "wheels"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), full], check=True,
                       capture_output=True)
        try:
            env = dict(os.environ, CMAKE_ARGS=os.environ.get("CMAKE_ARGS", "-DRERENDER_CUDA=OFF"))
            print(f"building {commit} ({full[:10]}) into {site} ...", flush=True)
            subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(tree)],
                           check=True, env=env)
            wheel = next(wheels.glob("rerender-*.whl"))
            tmp_site = site.with_name(site.name + ".tmp")
            shutil.rmtree(tmp_site, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "zipfile", "-e", str(wheel), str(tmp_site)], check=True)
            os.replace(tmp_site, site)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], capture_output=True)
    return site


def prepare_case(case: BQ.Case, root: Path, cache: Path) -> tuple[Path, Path, list[np.ndarray], set[int]]:
    """Input frames and key frames of ``case`` written under ``root``; returns (input, keys, truth, keys)."""
    frames = BQ.load_case(case, cache)
    filt = BQ.FILTERS[case.filter]
    truth = [filt(f) for f in frames]
    keys = set(range(0, len(frames), case.key_every))
    inp, kdir = root / "input", root / "keys"
    for i, f in enumerate(frames):
        media.write_image(inp / f"{i:04d}.png", f)
    for k in sorted(keys):
        media.write_image(kdir / f"{k:04d}.png", truth[k])
    return inp, kdir, truth, keys


def demo_size(spec: str) -> tuple[int, int]:
    """(height, width) of ``--demo``: ``SIZE`` (square) or ``WxH``."""
    w, _, h = spec.lower().partition("x")
    try:
        hw = (int(h or w), int(w))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--demo: expected SIZE or WxH, got {spec!r}") from None
    if min(hw) < 32:
        raise argparse.ArgumentTypeError(f"--demo: {spec!r} is too small (32 pixels at least)")
    return hw


def targets(h: int, w: int, frames: int, non_key: int, wall: float) -> str:
    """Issue 23's per-frame targets beside this run's figures (where the size has one)."""
    if (h, w) == (512, 512):
        per_frame = wall / non_key
        return f"  [target <= {TARGET_DEMO_WALL} s wall per non-key frame: {per_frame:.3f}, {verdict(per_frame <= TARGET_DEMO_WALL)}]"
    if max(h, w) >= 1920:
        rate = frames / wall
        return f"  [target >= {TARGET_1080P_RATE:g} frame/s: {rate:.2f} frames/s, {verdict(rate >= TARGET_1080P_RATE)}]"
    return ""


def prepare_demo(size: tuple[int, int], frames: int, root: Path) -> tuple[Path, Path, list[np.ndarray], set[int]]:
    """The bench_propagate clip (the demo's camera move with a parallax layer, size = (h, w)), keys
    every 10 frames stylised by the demo's filter; the truth is the filter on every frame."""
    from rerender.demo import demo_clip, stylise

    clip = demo_clip(frames, size)
    truth = [stylise(f) for f in clip]
    keys = set(range(0, frames, BQ.KEY_EVERY))
    for i, f in enumerate(clip):
        media.write_image(root / "input" / f"{i:04d}.png", f)
    for k in sorted(keys):
        media.write_image(root / "keys" / f"{k:04d}.png", truth[k])
    return root / "input", root / "keys", truth, keys


# Runs ``rerender propagate`` as the command line does, and writes the job's per-stage CPU seconds
# (JobResult.timings; {} for a build without them, such as 0157ef6) to the file named by argv[1].
# For a reference, this checkout's editable install
# (a meta-path finder that wins over PYTHONPATH) is dropped first, so that it cannot shadow it.
LAUNCHER = """
import json, runpy, sys
stages_file = sys.argv.pop(1)
if sys.argv.pop(1) == 'reference':
    sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in type(f).__module__]
with open(stages_file, 'w') as f:
    json.dump({}, f)
try:
    import rerender.pipeline as pipeline
    run = pipeline.run_propagation
except (ImportError, AttributeError):
    pipeline = None
def recorded(*args, **kwargs):
    result = run(*args, **kwargs)
    with open(stages_file, 'w') as f:
        json.dump(getattr(result, 'timings', {}), f)
    return result
if pipeline is not None:
    pipeline.run_propagation = recorded
sys.argv[0] = 'rerender'
runpy.run_module('rerender', run_name='__main__')
"""


def run_job(site: Path | None, inp: Path, keys: Path, out: Path, extra: list[str]) -> tuple[float, float, float]:
    """One ``rerender propagate`` in a fresh process; (CPU seconds user+sys, wall seconds, CPU
    seconds of the job's stages: synthesis, flow, guides, blending summed over threads)."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(out.with_name(out.name + ".work"), ignore_errors=True)
    env = dict(os.environ)
    if site is not None:
        env["PYTHONPATH"] = str(site) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    stages_file = out.with_name(out.name + ".stages.json")
    cmd = [sys.executable, "-c", LAUNCHER, str(stages_file), "reference" if site is not None else "this",
           "propagate", str(inp), "--keys", str(keys), "-o", str(out),
           "--work-dir", str(out.with_name(out.name + ".work")), *extra]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=str(site or REPO))
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:2])} ... failed ({p.returncode}):\n{p.stderr[-2000:]}")
    timings = json.loads(stages_file.read_text())
    stages = sum(timings.values()) if timings else float("nan")
    return (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), wall, stages


def psnr(out: Path, truth: list[np.ndarray], keys: set[int]) -> float:
    non_key = [i for i in range(len(truth)) if i not in keys]
    mse = np.mean([((media.read_image(out / f"{i:04d}.png").astype(np.float64) - truth[i]) ** 2).mean()
                   for i in non_key])
    return float(10 * np.log10(255.0 ** 2 / mse))


def warp_error(inp: Path, out: Path) -> float:
    """Mean warp error of the output's consecutive frames along the input's flow."""
    from rerender.metrics import temporal_consistency

    return temporal_consistency(inp, out).mean


def same_frames(a: Path, b: Path, n: int) -> bool:
    return all((a / f"{i:04d}.png").read_bytes() == (b / f"{i:04d}.png").read_bytes() for i in range(n))


def profile(inp: Path, keys: Path, out: Path, top: int) -> None:
    """cProfile of this code's job in this process (the pass threads are not profiled: their time
    shows as the main thread's wait), plus the job's own per-stage CPU seconds."""
    from rerender.pipeline import propagate

    shutil.rmtree(out.with_name(out.name + ".work"), ignore_errors=True)
    prof = cProfile.Profile()
    c0 = time.process_time()
    prof.enable()
    res = propagate(inp, keys, out, work_dir=out.with_name(out.name + ".work"))
    prof.disable()
    cpu = time.process_time() - c0
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(top)
    print(s.getvalue())
    print(f"process CPU {cpu:.2f} s; stages (CPU s, thread-summed): "
          + ", ".join(f"{k} {v:.2f}" for k, v in sorted(res.timings.items())))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="*", type=int, default=[0, 4, 3], help="bench_quality case numbers")
    ap.add_argument("--size", type=int, default=256, help="short side of the clips (bench_quality: 256)")
    ap.add_argument("--frames", type=int, help="frames per clip (keys every 10; default 21, the demo 31)")
    ap.add_argument("--demo", type=demo_size, metavar="SIZE|WxH", help="instead of the real clips: "
                    "bench_propagate's generated clip, SIZE x SIZE or W x H (31 frames unless --frames says otherwise)")
    ap.add_argument("--warp", action="store_true", help="also print each output's warp error")
    ap.add_argument("--repeat", type=int, default=3, help="runs per implementation and case (median)")
    ap.add_argument("--reference", action="append", default=[], metavar="NAME=DIR",
                    help="another build: DIR holds its rerender package (put first on PYTHONPATH)")
    ap.add_argument("--build", action="append", default=[], metavar="COMMIT",
                    help="build COMMIT once (cached) and compare with it")
    ap.add_argument("--set", action="append", default=[], metavar="ARGS",
                    help="extra arguments for this code's job only (e.g. '--blend select')")
    ap.add_argument("--ebsynth", metavar="PATH", help="the public EbSynth binary: its CPU time on the same job "
                    "(keys must bound every segment: the last frame a key)")
    ap.add_argument("--profile", action="store_true", help="cProfile this code's job instead of comparing")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--cache", default=str(BQ.DEFAULT_CACHE))
    args = ap.parse_args(argv)
    cache = Path(args.cache).expanduser()
    ebsynth = Path(args.ebsynth) if args.ebsynth else None
    if ebsynth and not (ebsynth.is_file() and os.access(ebsynth, os.X_OK)):
        raise SystemExit(f"bench_speed: --ebsynth {ebsynth}: not an executable file")
    impls: list[tuple[str, Path | None, list[str]]] = [("this", None, [a for s in args.set for a in s.split()])]
    for spec in args.reference:
        name, _, folder = spec.partition("=")
        impls.append((name, Path(folder).expanduser(), []))
    for commit in args.build:
        impls.append((commit, build_reference(commit), []))
    root = Path(tempfile.mkdtemp(prefix="bench_speed_"))
    try:
        rows = []
        for n in ([-1] if args.demo else args.cases):
            croot = root / f"case{n}"
            if args.demo:
                name = "demo"
                inp, keys, truth, key_set = prepare_demo(args.demo, args.frames or 31, croot)
            else:
                case = BQ.dataclasses.replace(BQ.CASES[n], frames=args.frames or 21, short=args.size,
                                              max_long=round(BQ.CASES[n].max_long * args.size / 256))
                name = case.name
                inp, keys, truth, key_set = prepare_case(case, croot, cache)
            h, w = truth[0].shape[:2]
            print(f"[{n}] {name} {w}x{h}, {len(truth)} frames, keys {sorted(key_set)}", flush=True)
            if args.profile:
                profile(inp, keys, croot / "out_profile", args.top)
                continue
            times: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _, _ in impls}
            for _ in range(args.repeat):
                for name, site, extra in impls:
                    times[name].append(run_job(site, inp, keys, croot / f"out_{name}", extra))
            non_key = len(truth) - len(key_set)
            cpus = {name: statistics.median(t[0] for t in times[name]) for name, _, _ in impls}
            for name, _, _ in impls:
                cpu = cpus[name]
                wall = statistics.median(t[1] for t in times[name])
                rest = statistics.median(t[0] - t[2] for t in times[name])  # start-up, decoding, writing...
                ratios = "  ".join(ratio_text(cpu, cpus[r], r) if name == "this" else f"x{cpu / cpus[r]:.2f} of {r}"
                                   for r, _, _ in impls if r != name)
                twins = [r for r, _, _ in impls if r != name
                         and same_frames(croot / f"out_{name}", croot / f"out_{r}", len(truth))]
                same = f"  same bytes as {', '.join(twins)}" if twins else ""
                warp = f"  warp x1000 {1000 * warp_error(inp, croot / f'out_{name}'):6.3f}" if args.warp else ""
                beside = targets(h, w, len(truth), non_key, wall) if name == "this" else ""
                line = (f"  {name:<10} CPU {cpu:6.2f} s ({cpu / non_key:.3f} s per non-key frame)  "
                        f"wall {wall:6.2f} s ({wall / non_key:.3f})  outside the stages {rest:5.2f} s  "
                        f"PSNR {psnr(croot / f'out_{name}', truth, key_set):6.2f} dB{warp}  {ratios}{same}{beside}")
                print(line, flush=True)
                rows.append((n, name, cpu))
            if ebsynth:
                eb_cpu, eb_wall, cached, eb_psnr = ebsynth_cpu(ebsynth, inp, truth, key_set, cache)
                note = "" if not cached else (" (cached)" if cached == 1 else f" ({cached:.0%} cached)")
                cpu_text = ("CPU not recorded" if eb_cpu is None
                            else f"CPU {eb_cpu:7.2f} s ({eb_cpu / non_key:.3f} s per non-key frame)")
                beside = "" if eb_cpu is None else f"  this code x{cpus['this'] / eb_cpu:.3f} of it"
                print(f"  {'ebsynth':<10} {cpu_text}  wall {eb_wall:7.2f} s{note}  PSNR {eb_psnr:6.2f} dB"
                      f"{beside}", flush=True)
                if eb_cpu is not None:
                    rows.append((n, "ebsynth", eb_cpu))
        if len(args.cases) > 1 and not args.profile and not args.demo:
            print("\ntotal CPU over the cases:")
            names = [name for name, _, _ in impls] + (["ebsynth"] if ebsynth else [])
            totals = {name: sum(c for _, nm, c in rows if nm == name) for name in names}
            complete = {name for name in names if sum(1 for _, nm, _ in rows if nm == name) == len(args.cases)}
            for name in names:
                if name not in complete:
                    print(f"  {name:<10} (not recorded for every case)")
                    continue
                vs = "  ".join(ratio_text(totals["this"], totals[r], r) if r != "ebsynth"
                               else f"x{totals['this'] / totals[r]:.3f} of ebsynth" for r in names
                               if name == "this" and r != "this" and r in complete)
                print(f"  {name:<10} {totals[name]:6.2f} s  {vs}".rstrip())
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
